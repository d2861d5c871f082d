package ring0

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"enjin"
	"enjin/services/api"
	"enjin/services/inventory"
)

// AppsOptions say how the ring 1 nodes ring 0 runs host apps.
type AppsOptions struct {
	RouterAddr string // the router's listen address, e.g. 127.0.0.1:7080
	// RouterTLSAddr is where the router serves custom domains over TLS, e.g. 127.0.0.1:7443;
	// "" serves none. A simulated host serves them on its own address, port 7443.
	RouterTLSAddr string
	AppsDomain    string       // app hosts are <app>.<tenant>.<AppsDomain>
	DNSAddr       string       // DNS for app names, e.g. 127.0.0.1:5353
	Bridge        string       // the instances' bridge, e.g. enjin0
	Prefix        netip.Prefix // the instances' addresses, e.g. 100.88.0.0/16
	Limits        string       // a policy file (limits per instance, quotas) for the nodes; "" for the defaults
	UIDRange      string       // FIRST:COUNT of the app uids; "" for the default
}

// appsAPI is where a ring 1 node's app API listens and the token it takes.
type appsAPI struct {
	url, token string
	tls        *tls.Config // how to check the API's certificate, when it serves https
}

// on is a as node's, for the API.
func (a appsAPI) on(node enjin.NodeID) api.AppsBackend {
	return api.AppsBackend{Node: node, Base: a.url, Token: a.token, TLS: a.tls}
}

// appsOptions prepares a ring 1 node to host apps — an app API port and token of its own —
// and tells the node, in o, about them and about the router, DNS and bridge.
func (r *Ring0) appsOptions(spec Ring1Spec, dir string, o *enjin.Ring1Options) error {
	a, id := r.cfg.Apps, spec.ID
	router, routerTLS, bridge := a.RouterAddr, a.RouterTLSAddr, cmp.Or(spec.Bridge, a.Bridge)
	addr, err := appsAPIAddr(filepath.Join(dir, "apps-api.addr"))
	if spec.Addr.IsValid() { // a simulated host: on its own address, where the others reach it
		addr, router, err = netip.AddrPortFrom(spec.Addr, 7071).String(), netip.AddrPortFrom(spec.Addr, 7080).String(), nil
		if routerTLS != "" {
			routerTLS = netip.AddrPortFrom(spec.Addr, 7443).String()
		}
	}
	if err != nil {
		return fmt.Errorf("ring0: port for the app api of %s: %w", id, err)
	}
	tokPath := filepath.Join(dir, "apps.token")
	if err := ensureToken(tokPath); err != nil {
		return err
	}
	b, err := os.ReadFile(tokPath)
	if err != nil {
		return fmt.Errorf("ring0: %w", err)
	}
	if err := r.shareAppsToken(context.Background(), id, strings.TrimSpace(string(b))); err != nil {
		return err
	}
	r.mu.Lock()
	base := "http://" + addr
	if spec.Addr.IsValid() && !spec.Addr.IsLoopback() {
		base = "https://" + addr // nodeTLS gives it a certificate
	}
	r.appsAPIs[id] = appsAPI{url: base, token: strings.TrimSpace(string(b)), tls: r.appsTLS(id, base)}
	r.mu.Unlock()
	o.AppsDir, o.AppsAPI, o.AppsTokenFile = filepath.Join(dir, "apps"), addr, tokPath
	o.Router, o.RouterTLS, o.AppsDomain, o.DNS = router, routerTLS, a.AppsDomain, a.DNSAddr
	o.Bridge, o.Prefix, o.Limits, o.UIDRange = bridge, a.Prefix.String(), a.Limits, a.UIDRange
	o.NoVMs = spec.Netns != "" // libvirtd's network is the machine's, not the host's
	return nil
}

// appsAPIAddr is the loopback address a node's app API listens on: the one recorded in path,
// so a node started again — or adopted by a restarted ring 0 — keeps it, else a free port,
// recorded.
func appsAPIAddr(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if ap, err := netip.ParseAddrPort(strings.TrimSpace(string(b))); err == nil && ap.Addr().IsLoopback() {
			return ap.String(), nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	return addr, os.WriteFile(path, []byte(addr+"\n"), 0o600)
}

// appsAPIOf is node's app API: the one ring 0 started the node with, or the one a joined
// node's last own observation names, with the bearer ring 0 gave it when it joined.
func (r *Ring0) appsAPIOf(ctx context.Context, node enjin.NodeID) (appsAPI, bool) {
	r.mu.Lock()
	a, ok := r.appsAPIs[node]
	r.mu.Unlock()
	if ok {
		return a, true
	}
	claim, err := r.lastClaim(ctx, node)
	if err != nil {
		return appsAPI{}, false
	}
	return r.appsAPIIn(ctx, node, claim)
}

// appsAPIIn is node's app API as ring 0 started it, or as claim, the node's last own
// observation, names it.
func (r *Ring0) appsAPIIn(ctx context.Context, node enjin.NodeID, claim enjin.Observation) (appsAPI, bool) {
	r.mu.Lock()
	a, ok := r.appsAPIs[node]
	r.mu.Unlock()
	if ok {
		return a, true
	}
	if claim.AppsAPI == "" {
		return appsAPI{}, false
	}
	u, err := url.Parse(claim.AppsAPI)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		r.log.Warn("a node names an app API that is no base URL", "node", node, "apps_api", claim.AppsAPI)
		return appsAPI{}, false
	}
	tok, err := r.appsToken(ctx, node)
	if err != nil {
		return appsAPI{}, false // joined before nodes got a bearer for their app API
	}
	base := u.Scheme + "://" + u.Host
	return appsAPI{url: base, token: tok, tls: r.appsTLS(node, base)}, true
}

// appsTokenSecret names the bearer of a node's app API among its sealed secrets.
const appsTokenSecret = "apps-token"

// shareAppsToken records node's app API bearer in the store, sealed, so every ring 0 member
// can present it — not only the one that started or joined the node.
func (r *Ring0) shareAppsToken(ctx context.Context, node enjin.NodeID, tok string) error {
	sealed, err := r.broker.Chain().Seal("node/"+string(node)+"/"+appsTokenSecret, []byte(tok))
	if err != nil {
		return err
	}
	return r.store.PutNodeSecret(ctx, node, appsTokenSecret, sealed)
}

// appsToken is the bearer of node's app API: the one this member made, or another's, from the
// store.
func (r *Ring0) appsToken(ctx context.Context, node enjin.NodeID) (string, error) {
	if b, err := os.ReadFile(filepath.Join(r.nodeDir(node), "apps.token")); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	sealed, err := r.store.NodeSecret(ctx, node, appsTokenSecret)
	if err != nil {
		return "", err
	}
	tok, err := r.broker.Chain().Unseal("node/"+string(node)+"/"+appsTokenSecret, sealed)
	return string(tok), err
}

// AppsBackend is the app API of the ring 1 node running tenant t's app: the node the app was
// placed on, or else the first of t's hosts that hosts apps. With place, an app placed
// nowhere is placed by signed bids (auction): node, if given, must bid for it; else every
// host that is up and runs apps is offered it (fewest of t's apps wins, then most memory
// free). The winner hosts t too, if it did not, and its bid is stored with the placement.
func (r *Ring0) AppsBackend(ctx context.Context, t enjin.TenantID, app string, place bool, node enjin.NodeID) (api.AppsBackend, error) {
	placed, err := r.store.AppHost(ctx, t, app)
	switch {
	case err == nil:
		if node != "" && node != placed {
			return api.AppsBackend{}, fmt.Errorf("ring0: app %s/%s runs on %s; it cannot move to %s: %w", t, app, placed, node, inventory.ErrInvalid)
		}
		return r.backendOn(ctx, t, placed)
	case !errors.Is(err, inventory.ErrNotFound):
		return api.AppsBackend{}, err
	}
	if node != "" && !place {
		return api.AppsBackend{}, fmt.Errorf("ring0: app %s/%s: %w", t, app, inventory.ErrNotFound)
	}
	var candidates []api.AppsBackend
	if node != "" {
		if err := r.hostOn(ctx, t, node); err != nil {
			return api.AppsBackend{}, err
		}
		a, ok := r.appsAPIOf(ctx, node)
		if !ok {
			return api.AppsBackend{}, fmt.Errorf("ring0: node %s hosts no apps: %w", node, inventory.ErrInvalid)
		}
		candidates = []api.AppsBackend{a.on(node)}
	} else {
		all, err := r.AppsBackends(ctx, t)
		if err != nil {
			return api.AppsBackend{}, err
		}
		if !place {
			if len(all) == 0 {
				return api.AppsBackend{}, fmt.Errorf("ring0: no ring 1 node hosting %s runs apps: %w", t, inventory.ErrInvalid)
			}
			return all[0], nil
		}
		// Every host that is up and runs apps may take a new app — the tenant's first, with
		// fewest of its apps, wins — so a tenant's apps spread over the hosts.
		if candidates, err = r.upAppHosts(ctx, ""); err != nil {
			return api.AppsBackend{}, err
		}
		if len(candidates) == 0 {
			return api.AppsBackend{}, fmt.Errorf("ring0: no ring 1 node that runs apps is up to take %s/%s: %w", t, app, inventory.ErrInvalid)
		}
	}
	// The placement goes to a bid: even a host the caller named signs what it promises.
	w, err := r.placeBy(ctx, t, app, candidates)
	if err != nil {
		return api.AppsBackend{}, err
	}
	chosen := w.backend
	if placed, err = r.store.PlaceApp(ctx, t, app, chosen.Node, w.signed); err != nil {
		return api.AppsBackend{}, err
	}
	if placed == chosen.Node {
		return chosen, nil
	}
	return r.backendOn(ctx, t, placed) // a racing deploy placed it elsewhere first
}

// backendOn is node's app API, for tenant t's app placed there.
func (r *Ring0) backendOn(ctx context.Context, t enjin.TenantID, node enjin.NodeID) (api.AppsBackend, error) {
	a, ok := r.appsAPIOf(ctx, node)
	if !ok {
		return api.AppsBackend{}, fmt.Errorf("ring0: node %s, which runs %s's app, has not said where its app API is: %w", node, t, ErrNode)
	}
	return a.on(node), nil
}

// AppsBackends are the app APIs of every host of tenant t that hosts apps, in node order.
func (r *Ring0) AppsBackends(ctx context.Context, t enjin.TenantID) ([]api.AppsBackend, error) {
	tn, err := r.store.GetTenant(ctx, t)
	if err != nil {
		return nil, err
	}
	var out []api.AppsBackend
	for _, h := range tn.Hosts {
		if a, ok := r.appsAPIOf(ctx, h.Node); ok {
			out = append(out, a.on(h.Node))
		}
	}
	return out, nil
}

// ForgetApp forgets where tenant t's app ran: it was destroyed at its home. Its replicas'
// copies are destroyed too (one on a host that does not answer, when the host is next seen
// running it).
func (r *Ring0) ForgetApp(ctx context.Context, t enjin.TenantID, app string) error {
	replicas, err := r.store.Replicas(ctx)
	if err != nil {
		return err
	}
	for _, n := range replicas[inventory.AppKey{Tenant: t, App: app}] {
		if h, ok := r.appsAPIOf(ctx, n); ok {
			r.dropCopy(ctx, h.on(n), inventory.PlacedApp{Tenant: t, App: app}, false)
		}
	}
	return r.store.ForgetApp(ctx, t, app)
}
