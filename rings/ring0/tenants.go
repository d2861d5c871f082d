package ring0

import (
	"context"
	"errors"
	"fmt"
	"time"

	"enjin/bus"
	"enjin/keys"
	"enjin/rings"
	"enjin/services/inventory"
)

// CreateTenant records tenant t, asks a ring 1 node to host it — the node makes a scoped
// signing key and hands ring 0 only its public half — and creates the tenant's NATS account
// with that key's scope (every permission of the users it signs fixed by the template), its
// flows into RING1 and OPS wired and pushed.
func (r *Ring0) CreateTenant(ctx context.Context, t rings.TenantID, metadata map[string]any) (inventory.Tenant, error) {
	host, err := r.pickHost(ctx)
	if err != nil {
		return inventory.Tenant{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rep, err := bus.Request[bus.TenantKeyRequest, bus.TenantKeyReply](rctx, r.nc, bus.R0ToRing1Cmd(host, bus.VerbTenantKey), bus.TenantKeyRequest{Tenant: t})
	if err != nil {
		return inventory.Tenant{}, fmt.Errorf("ring0: ring 1 node %s cannot host %s: %w", host, t, err)
	}
	if _, err := r.store.CreateTenant(ctx, inventory.Tenant{ID: t, Metadata: metadata}); err != nil {
		return inventory.Tenant{}, err
	}
	if err := r.broker.AddTenant(ctx, t, rep.Key); err != nil {
		return inventory.Tenant{}, err
	}
	if err := r.store.AddTenantHost(ctx, t, host, rep.Key); err != nil {
		return inventory.Tenant{}, err
	}
	r.log.Info("tenant created", "tenant", t, "host", host)
	r.event("tenant-created", map[string]any{"tenant": t, "host": host})
	return r.store.GetTenant(ctx, t)
}

// pickHost chooses the ring 1 node to host a new tenant: the up node hosting the fewest.
func (r *Ring0) pickHost(ctx context.Context) (rings.NodeID, error) {
	one := rings.Ring1
	nodes, err := r.store.ListNodes(ctx, inventory.NodeFilter{Ring: &one, State: "up"})
	if err != nil {
		return "", err
	}
	tenants, err := r.store.ListTenants(ctx)
	if err != nil {
		return "", err
	}
	load := map[rings.NodeID]int{}
	for _, t := range tenants {
		for _, h := range t.Hosts {
			load[h.Node]++
		}
	}
	var best rings.NodeID
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
func (r *Ring0) DeleteTenant(ctx context.Context, t rings.TenantID, version int64) error {
	if err := r.store.DeleteTenant(ctx, t, version); err != nil {
		return err
	}
	if err := r.broker.RemoveTenant(ctx, t); err != nil && !errors.Is(err, keys.ErrNoKey) {
		return err
	}
	r.log.Info("tenant deleted", "tenant", t)
	r.event("tenant-deleted", map[string]any{"tenant": t})
	return nil
}
