package ring0

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/services/api"
	"enjin/services/appapi"
	"enjin/services/inventory"
)

// CreateTenant records tenant t, asks a ring 1 node to host it — the node makes a scoped
// signing key and hands ring 0 only its public half — and creates the tenant's NATS account
// with that key's scope (every permission of the users it signs fixed by the template), its
// flows into RING1 and OPS wired and pushed.
func (r *Ring0) CreateTenant(ctx context.Context, t enjin.TenantID, metadata map[string]any) (inventory.Tenant, error) {
	host, err := r.pickHost(ctx)
	if err != nil {
		return inventory.Tenant{}, err
	}
	key, err := r.tenantKey(ctx, t, host)
	if err != nil {
		return inventory.Tenant{}, err
	}
	if _, err := r.store.CreateTenant(ctx, inventory.Tenant{ID: t, Metadata: metadata}); err != nil {
		return inventory.Tenant{}, err
	}
	if err := r.addHost(ctx, t, host, key); err != nil {
		return inventory.Tenant{}, err
	}
	r.log.Info("tenant created", "tenant", t, "host", host)
	r.event("tenant-created", map[string]any{"tenant": t, "host": host})
	return r.store.GetTenant(ctx, t)
}

// tenantKey asks ring 1 node host for the scoped signing key it signs tenant t's users with
// — the node makes it, if it has none, and hands over only its public half.
func (r *Ring0) tenantKey(ctx context.Context, t enjin.TenantID, host enjin.NodeID) (string, error) {
	acct, err := r.broker.EnsureTenant(ctx, t)
	if err != nil {
		return "", err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rep, err := bus.Request[bus.TenantKeyRequest, bus.TenantKeyReply](rctx, r.nc, bus.R0ToRing1Cmd(host, bus.VerbTenantKey),
		bus.TenantKeyRequest{Tenant: t, Account: acct})
	if err != nil {
		return "", fmt.Errorf("ring0: ring 1 node %s cannot host %s: %w", host, t, err)
	}
	return rep.Key, nil
}

// addHost makes host one of tenant t's hosts, signing t's users with key: the account's
// scope for it first, so the record never names a host whose users the broker refuses.
func (r *Ring0) addHost(ctx context.Context, t enjin.TenantID, host enjin.NodeID, key string) error {
	if err := r.broker.AddTenant(ctx, t, key); err != nil {
		return err
	}
	return r.store.AddTenantHost(ctx, t, host, key)
}

// hostOn makes ring 1 node host one of tenant t's hosts, unless it is one: the node must be
// an up ring 1 node.
func (r *Ring0) hostOn(ctx context.Context, t enjin.TenantID, node enjin.NodeID) error {
	r.hostMu.Lock()
	defer r.hostMu.Unlock()
	tn, err := r.store.GetTenant(ctx, t)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(tn.Hosts, func(h inventory.TenantHost) bool { return h.Node == node }) {
		return nil
	}
	n, err := r.store.GetNode(ctx, node)
	if errors.Is(err, inventory.ErrNotFound) {
		return fmt.Errorf("ring0: node %s: %w", node, inventory.ErrInvalid)
	}
	if err != nil {
		return err
	}
	if n.Ring != enjin.Ring1 || n.State != string(enjin.StateUp) {
		return fmt.Errorf("ring0: node %s is no up ring 1 node (ring %d, %s): %w", node, n.Ring, n.State, inventory.ErrInvalid)
	}
	key, err := r.tenantKey(ctx, t, node)
	if err != nil {
		return err
	}
	if err := r.addHost(ctx, t, node, key); err != nil {
		return err
	}
	r.log.Info("tenant hosted on another node", "tenant", t, "node", node)
	r.event("tenant-hosted", map[string]any{"tenant": t, "host": node})
	return nil
}

// pickHost chooses the ring 1 node to host a new tenant: the up node hosting the fewest.
func (r *Ring0) pickHost(ctx context.Context) (enjin.NodeID, error) {
	one := enjin.Ring1
	nodes, err := r.store.ListNodes(ctx, inventory.NodeFilter{Ring: &one, State: "up"})
	if err != nil {
		return "", err
	}
	tenants, err := r.store.ListTenants(ctx)
	if err != nil {
		return "", err
	}
	load := map[enjin.NodeID]int{}
	for _, t := range tenants {
		for _, h := range t.Hosts {
			load[h.Node]++
		}
	}
	var best enjin.NodeID
	for _, n := range nodes {
		if best == "" || load[n.ID] < load[best] {
			best = n.ID
		}
	}
	if best == "" {
		return "", fmt.Errorf("ring0: no ring 1 node is up to host a tenant: %w", inventory.ErrInvalid)
	}
	return best, nil
}

// DeleteTenant removes tenant t if its version is still version: the record goes, and the
// account is disabled with every credential revoked, which closes its users' connections.
func (r *Ring0) DeleteTenant(ctx context.Context, t enjin.TenantID, version int64) error {
	cur, err := r.store.GetTenant(ctx, t)
	if err != nil {
		return err
	}
	if cur.Version != version {
		return fmt.Errorf("ring0: tenant %s: %w", t, inventory.ErrConflict)
	}
	if err := r.destroyApps(ctx, t); err != nil {
		return err
	}
	if err := r.store.DeleteTenant(ctx, t, version); err != nil {
		return err
	}
	r.sweepImages(ctx) // the tenant's image records went with it
	if err := r.broker.RemoveTenant(ctx, t); err != nil && !errors.Is(err, keys.ErrNoKey) {
		return err
	}
	r.log.Info("tenant deleted", "tenant", t)
	r.event("tenant-deleted", map[string]any{"tenant": t})
	return nil
}

// serveRevoke answers ring 1 nodes asking to revoke a tenant's user (an app instance that
// stopped). Only a node hosting the tenant may ask; the caller is the server-attested one.
func (r *Ring0) serveRevoke() error {
	_, err := bus.Handle(r.nc, bus.Ring0API(bus.ServiceRevoke), "ring0", func(m *nats.Msg, req bus.RevokeRequest) (struct{}, error) {
		caller, err := r.ring1Caller(m)
		if err != nil {
			return struct{}{}, fmt.Errorf("revoke: %w", err)
		}
		r.metrics.revoked.Inc()
		if req.Tenant.Validate() != nil || !nkeys.IsValidPublicUserKey(req.User) {
			return struct{}{}, errors.New("revoke: want a tenant and a user public key")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tn, err := r.store.GetTenant(ctx, req.Tenant)
		if err != nil {
			return struct{}{}, fmt.Errorf("revoke: %w", err)
		}
		if !slices.ContainsFunc(tn.Hosts, func(h inventory.TenantHost) bool { return h.Node == caller }) {
			r.log.Warn("revoke refused", "caller", caller, "tenant", req.Tenant)
			return struct{}{}, fmt.Errorf("revoke: %q does not host %s", caller, req.Tenant)
		}
		if err := r.broker.Revoke(ctx, keys.TenantAccount(req.Tenant), req.User); err != nil {
			return struct{}{}, fmt.Errorf("revoke: %w", err)
		}
		r.event("user-revoked", map[string]any{"tenant": req.Tenant, "user": req.User, "by": caller})
		return struct{}{}, nil
	})
	return err
}

// destroyApps stops and deletes every app of tenant t on every node hosting its apps.
func (r *Ring0) destroyApps(ctx context.Context, t enjin.TenantID) error {
	all, err := r.AppsBackends(ctx, t)
	if err != nil {
		return err
	}
	for _, b := range all {
		if err := r.destroyAppsOn(ctx, t, b); err != nil {
			return err
		}
	}
	return nil
}

// destroyAppsOn stops and deletes every app of tenant t on the node behind app API b.
func (r *Ring0) destroyAppsOn(ctx context.Context, t enjin.TenantID, b api.AppsBackend) error {
	call := func(method, path string, out any) error {
		req, err := http.NewRequestWithContext(ctx, method, b.Base+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+b.Token)
		resp, err := b.Client().Do(req)
		if err != nil {
			return fmt.Errorf("ring0: apps of %s on %s: %w", t, b.Node, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotFound {
			return fmt.Errorf("ring0: apps of %s on %s: %s %s: %s", t, b.Node, method, path, resp.Status)
		}
		if out != nil {
			return json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out)
		}
		return nil
	}
	var list struct {
		Apps []struct {
			Name string `json:"name"`
		} `json:"apps"`
	}
	if err := call("GET", appapi.OpApps.Path(string(t)), &list); err != nil {
		return err
	}
	for _, a := range list.Apps {
		if err := call("DELETE", appapi.OpDestroy.Path(string(t), a.Name), nil); err != nil {
			return err
		}
		r.log.Info("app destroyed with its tenant", "tenant", t, "app", a.Name, "node", b.Node)
	}
	return nil
}
