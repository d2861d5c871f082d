package apphost

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"enjin"
)

// Networks joins instances to their tenant's networks. Ring 1 implements it: ring 0 makes
// the ports, ring 1 wires them into the instance's network namespace.
type Networks interface {
	// Join gives instance (of tenant, whose network namespace is at netns) a port on each
	// of nets, in order, and returns them. If it fails, the instance is on none.
	Join(ctx context.Context, tenant enjin.TenantID, instance, netns string, nets []enjin.AppNetwork) ([]Attachment, error)
	// Update brings the ports of an instance that joined, and has not left, up to date with
	// ring 0's records; ok is false if it is on no network (any more).
	Update(ctx context.Context, tenant enjin.TenantID, instance string) (atts []Attachment, ok bool, err error)
	// Leave takes instance's ports away and gives them back.
	Leave(tenant enjin.TenantID, instance string)
	// Sweep gives back the ports of every instance but those in keep: what an earlier run
	// of the node left.
	Sweep(keep []string)
}

// joinNetworks gives a starting instance its ports on its tenant networks, if it has any.
func (a *app) joinNetworks(c InstanceConfig, netns string) ([]Attachment, error) {
	if len(c.Networks) == 0 {
		return nil, nil
	}
	nets := a.host.cfg.Networks
	if nets == nil {
		return nil, fmt.Errorf("apphost: %s.%d: this node carries no tenant networks", c.Type, c.Index)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return nets.Join(ctx, enjin.TenantID(a.tenant), c.ID, netns, c.Networks)
}

// leaveNetworks takes a stopped instance's ports away.
func (in *instance) leaveNetworks() {
	if len(in.cfg.Networks) > 0 && in.app.host.cfg.Networks != nil {
		in.app.host.cfg.Networks.Leave(enjin.TenantID(in.app.tenant), in.id)
	}
}

// NetworksChanged brings the ports of tenant's running instances up to date with ring 0's
// records (peers, rule sets), after ring 0 says they changed.
func (h *Host) NetworksChanged(ctx context.Context, tenant enjin.TenantID) error {
	if h.cfg.Networks == nil {
		return nil
	}
	var errs []error
	for _, a := range h.tenantApps(tenant) {
		for _, in := range a.all() {
			if len(in.cfg.Networks) == 0 {
				continue
			}
			atts, ok, err := h.cfg.Networks.Update(ctx, tenant, in.id)
			if err != nil {
				errs = append(errs, err)
			}
			if !ok {
				continue
			}
			in.mu.Lock()
			in.nets = atts
			in.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// tenantApps lists tenant's apps.
func (h *Host) tenantApps(tenant enjin.TenantID) []*app {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*app
	for _, a := range h.apps {
		if a.tenant == string(tenant) {
			out = append(out, a)
		}
	}
	return out
}

// instanceIDs lists the ids of every instance the host runs.
func (h *Host) instanceIDs() []string {
	apps := h.allApps()
	var out []string
	for _, a := range apps {
		for _, in := range a.all() {
			out = append(out, in.id)
		}
	}
	return out
}

// checkNetworks refuses networks that could not be a tenant's: names that are no slugs, the
// node's own, one named twice, too many of them or of their rule sets.
func checkNetworks(ns []enjin.AppNetwork) error {
	if len(ns) > enjin.MaxAppNetworks {
		return jsonErr("networks", "at most %d networks", enjin.MaxAppNetworks)
	}
	seen := map[string]bool{}
	for i, n := range ns {
		field := "networks." + strconv.Itoa(i)
		switch {
		case !enjin.IsSlug(n.Name):
			return jsonErr(field, "%s: want a network's name (1-63 of a-z, 0-9 and -)", quote(n.Name))
		case n.Name == enjin.DefaultNetwork:
			return jsonErr(field, "every instance is on the node's own network; name a tenant network")
		case seen[n.Name]:
			return jsonErr(field, "%s appears twice", quote(n.Name))
		case len(n.Rulesets) > enjin.MaxAppNetworks:
			return jsonErr(field+".rulesets", "at most %d", enjin.MaxAppNetworks)
		}
		seen[n.Name] = true
		for j, r := range n.Rulesets {
			if !enjin.IsSlug(r) {
				return jsonErr(field+".rulesets."+strconv.Itoa(j), "%s: want a rule set's name", quote(r))
			}
		}
	}
	return nil
}
