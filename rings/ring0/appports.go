package ring0

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/services/inventory"
)

// appOwner is how an app instance's ports name it.
func appOwner(instance string) string { return "app:" + instance }

// ring1Caller is the ring 1 node that sent request m, from the server-attested
// Nats-Request-Info header — never from the request itself.
func (r *Ring0) ring1Caller(m *nats.Msg) (enjin.NodeID, error) {
	ring1, err := r.broker.Chain().Account(keys.RING1)
	if err != nil {
		return "", err
	}
	var ci struct {
		Account string `json:"acc"`
		Name    string `json:"name_tag"`
	}
	if json.Unmarshal([]byte(m.Header.Get("Nats-Request-Info")), &ci) != nil || ci.Account != ring1.Public {
		return "", errors.New("only ring 1 nodes ask here")
	}
	id := enjin.NodeID(ci.Name)
	if id.Validate() != nil {
		return "", fmt.Errorf("caller %q: not a node", ci.Name)
	}
	return id, nil
}

// servePorts answers ring 1 nodes asking for their app instances' ports on tenant networks.
// A node gets ports only for a tenant it hosts, only on that tenant's networks, and only for
// instances whose ports, if any, are already its own.
func (r *Ring0) servePorts() error {
	_, err := bus.Handle(r.nc, bus.Ring0API(bus.ServicePorts), "ring0", func(m *nats.Msg, req bus.PortsRequest) (bus.PortsReply, error) {
		node, err := r.ring1Caller(m)
		if err != nil {
			return bus.PortsReply{}, fmt.Errorf("ports: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if req.Sweep {
			return bus.PortsReply{}, r.sweepAppPorts(ctx, node, req.Keep)
		}
		ports, err := r.appPorts(ctx, node, req)
		if err != nil {
			r.log.Warn("app ports refused", "node", node, "tenant", req.Tenant, "instance", req.Instance, "err", err)
			return bus.PortsReply{}, fmt.Errorf("ports: %w", err)
		}
		return bus.PortsReply{Ports: ports}, nil
	})
	return err
}

// appPorts makes instance req.Instance's ports what req says, and returns them.
func (r *Ring0) appPorts(ctx context.Context, node enjin.NodeID, req bus.PortsRequest) ([]bus.AppPort, error) {
	if err := req.Tenant.Validate(); err != nil {
		return nil, err
	}
	if !enjin.IsUUID(req.Instance) || len(req.Networks) > enjin.MaxAppNetworks {
		return nil, fmt.Errorf("want an instance id and at most %d networks", enjin.MaxAppNetworks)
	}
	tn, err := r.store.GetTenant(ctx, req.Tenant)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(tn.Hosts, func(h inventory.TenantHost) bool { return h.Node == node }) {
		return nil, fmt.Errorf("%s does not host %s", node, req.Tenant)
	}
	owner := appOwner(req.Instance)
	have, err := r.store.PortsOf(ctx, owner)
	if err != nil {
		return nil, err
	}
	for _, p := range have {
		if p.Node != node || p.Tenant != req.Tenant {
			return nil, fmt.Errorf("instance %s is not %s's", req.Instance, node)
		}
	}
	var out []bus.AppPort
	kept := map[string]bool{}
	var changed []string // rule sets whose members changed
	defer func() { r.membersChanged(req.Tenant, compactSets(changed)) }()
	for _, want := range req.Networks {
		if want.Name == enjin.DefaultNetwork || len(want.Rulesets) > enjin.MaxAppNetworks {
			return nil, fmt.Errorf("network %q: not a tenant network, or too many rule sets", want.Name)
		}
		nw, err := r.store.GetNetwork(ctx, req.Tenant, want.Name)
		if err != nil {
			return nil, fmt.Errorf("network %s/%s: %w", req.Tenant, want.Name, err)
		}
		if slices.ContainsFunc(out, func(p bus.AppPort) bool { return p.Network == nw.Name }) {
			return nil, fmt.Errorf("network %s named twice", nw.Name)
		}
		i := slices.IndexFunc(have, func(p inventory.Port) bool { return p.Network == nw.ID })
		var p inventory.Port
		if i >= 0 {
			if p, err = r.enforce(ctx, have[i], want.Rulesets, &changed); err != nil {
				return nil, err
			}
		} else {
			mac, joined := newMAC(), r.newHost(ctx, nw.ID, node)
			if p, err = r.store.CreatePort(ctx, inventory.Port{ID: inventory.NewID(), Network: nw.ID, Tenant: req.Tenant,
				MAC: mac, Owner: owner, Node: node, Rulesets: want.Rulesets}, v6Of(nw, mac)...); err != nil {
				return nil, err
			}
			changed = append(changed, want.Rulesets...)
			if joined {
				go r.peersChanged(nw, node)
			}
		}
		kept[p.ID] = true
		seg, err := r.segment(ctx, nw, p, want.Rulesets)
		if err != nil {
			return nil, err
		}
		if seg.Filter == nil { // an instance takes in nothing its rule sets do not allow
			seg.Filter = &enjin.Filter{Rules: []enjin.Rule{}}
		}
		out = append(out, bus.AppPort{Network: nw.Name, MAC: p.MAC, Segment: *seg})
	}
	var gone []inventory.Port
	for _, p := range have {
		if !kept[p.ID] {
			if err := r.store.DeletePort(ctx, p.ID); err != nil {
				return nil, err
			}
			gone = append(gone, p)
			changed = append(changed, p.Rulesets...)
		}
	}
	r.portsGone(ctx, gone)
	return out, nil
}

// sweepAppPorts releases the ports of node's app instances but those of the instances keep:
// what a node that restarted (and so started its instances afresh) left.
func (r *Ring0) sweepAppPorts(ctx context.Context, node enjin.NodeID, keep []string) error {
	ports, err := r.store.PortsOn(ctx, node, "app:")
	if err != nil {
		return err
	}
	n := 0
	for _, p := range ports {
		if slices.Contains(keep, p.Owner[len("app:"):]) {
			continue
		}
		if err := r.store.DeletePort(ctx, p.ID); err != nil {
			return err
		}
		n++
		r.membersChanged(p.Tenant, p.Rulesets)
	}
	r.portsGone(ctx, ports)
	if n > 0 {
		r.log.Info("released the ports of app instances gone", "node", node, "n", n)
	}
	return nil
}

// networksChanged tells each node hosting tenant t (of only, if not nil) that its networks or
// rule sets changed, so its app instances' ports catch up; it answers once they all have, or
// with what failed.
func (r *Ring0) networksChanged(ctx context.Context, t enjin.TenantID, only []enjin.NodeID) error {
	tn, err := r.store.GetTenant(ctx, t)
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range tn.Hosts {
		if only != nil && !slices.Contains(only, h.Node) {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := bus.Request[bus.NetworksRequest, struct{}](rctx, r.nc, bus.R0ToRing1Cmd(h.Node, bus.VerbNetworks), bus.NetworksRequest{Tenant: t})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("ring0: node %s: %w", h.Node, err))
		}
	}
	return errors.Join(errs...)
}
