package ring0

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"enjin/rings"
	"enjin/services/inventory"
)

// AppsOptions say how the ring 1 nodes ring 0 runs host apps.
type AppsOptions struct {
	RouterAddr string       // the router's listen address, e.g. 127.0.0.1:7080
	AppsDomain string       // app hosts are <app>.<tenant>.<AppsDomain>
	DNSAddr    string       // DNS for app names, e.g. 127.0.0.1:5353
	Bridge     string       // the instances' bridge, e.g. enjin0
	Prefix     netip.Prefix // the instances' addresses, e.g. 100.88.0.0/16
	Limits     string       // a policy file (limits per instance, quotas) for the nodes; "" for the defaults
	UIDRange   string       // FIRST:COUNT of the app uids; "" for the default
}

// appsAPI is where a ring 1 node's app API listens and the token it takes.
type appsAPI struct{ url, token string }

// appsArgs prepares a ring 1 node to host apps: an app API port and token of its own, and
// the flags that tell the node about them and about the router, DNS and bridge.
func (r *Ring0) appsArgs(id rings.NodeID, dir string) ([]string, error) {
	o := r.cfg.Apps
	addr, err := appsAPIAddr(filepath.Join(dir, "apps-api.addr"))
	if err != nil {
		return nil, fmt.Errorf("ring0: port for the app api of %s: %w", id, err)
	}
	tokPath := filepath.Join(dir, "apps.token")
	if err := ensureToken(tokPath); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(tokPath)
	if err != nil {
		return nil, fmt.Errorf("ring0: %w", err)
	}
	r.mu.Lock()
	r.appsAPIs[id] = appsAPI{url: "http://" + addr, token: strings.TrimSpace(string(b))}
	r.mu.Unlock()
	args := []string{"--apps-dir", filepath.Join(dir, "apps"), "--apps-api", addr, "--apps-token-file", tokPath,
		"--router", o.RouterAddr, "--apps-domain", o.AppsDomain, "--dns", o.DNSAddr,
		"--bridge", o.Bridge, "--prefix", o.Prefix.String()}
	if o.Limits != "" {
		args = append(args, "--limits", o.Limits)
	}
	if o.UIDRange != "" {
		args = append(args, "--uid-range", o.UIDRange)
	}
	return args, nil
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

// AppsBackend is the app API of the ring 1 node hosting tenant t.
func (r *Ring0) AppsBackend(ctx context.Context, t rings.TenantID) (string, string, error) {
	tn, err := r.store.GetTenant(ctx, t)
	if err != nil {
		return "", "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range tn.Hosts {
		if a, ok := r.appsAPIs[h.Node]; ok {
			return a.url, a.token, nil
		}
	}
	return "", "", fmt.Errorf("ring0: no ring 1 node hosting %s runs apps here: %w", t, inventory.ErrInvalid)
}
