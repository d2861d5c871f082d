package ring0

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"enjin"
	"enjin/services/inventory"
)

// A VM may route for one of its tenant networks: its NIC there is that network's router, the
// default route of every other port on it, and the VM's other networks reach the routed one
// through the VM's address on each. Its NICs may then send from any address (they carry
// others' packets); the guest forwards between them.

// routes is what port p on network nw reaches through the tenant's routers: its default route
// through the router of nw (unless p is that router's VM's) or else, on a network with NAT,
// through ring 1's gateway; and the block of each network a router VM routes for through
// that VM's address on nw.
func (r *Ring0) routes(ctx context.Context, nw inventory.Network, p inventory.Port) ([]enjin.Route, error) {
	routers, err := r.store.Routers(ctx, p.Tenant)
	if err != nil {
		return nil, err
	}
	var out []enjin.Route
	if nw.NAT && !slices.ContainsFunc(routers, func(rp inventory.Port) bool { return rp.Network == nw.ID }) {
		out = append(out, enjin.Route{To: "0.0.0.0/0", Via: nw.Gateway4.String()})
	}
	if len(routers) == 0 {
		return out, nil
	}
	nets, err := r.store.ListNetworks(ctx, p.Tenant)
	if err != nil {
		return nil, err
	}
	for _, rp := range routers {
		if rp.Owner == p.Owner {
			continue // p is the router's own: it routes
		}
		if rp.Network == nw.ID {
			if a := first4(rp.Addresses); a.IsValid() {
				out = append(out, enjin.Route{To: "0.0.0.0/0", Via: a.String()})
			}
			continue
		}
		mine, err := r.store.PortsOf(ctx, rp.Owner)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(mine, func(q inventory.Port) bool { return q.Network == nw.ID })
		j := slices.IndexFunc(nets, func(n inventory.Network) bool { return n.ID == rp.Network })
		if i < 0 || j < 0 || !first4(mine[i].Addresses).IsValid() {
			continue // the router VM is not on nw: nothing to route through here
		}
		out = append(out, enjin.Route{To: nets[j].CIDR4.String(), Via: first4(mine[i].Addresses).String()})
	}
	return out, nil
}

func first4(as []netip.Addr) netip.Addr {
	for _, a := range as {
		if a.Is4() {
			return a
		}
	}
	return netip.Addr{}
}

// isRouter says whether vm routes for one of its networks.
func isRouter(vm inventory.VM) bool {
	return slices.ContainsFunc(vm.Spec.NICs, func(n inventory.NIC) bool { return n.Router })
}

// routersChanged carries a router come or gone to every port of tenant t: each VM with a NIC
// on a tenant network is sent its state again (its guest takes new routes when it next boots),
// each node hosting t's apps brings its instances' routes up to date. It runs on a goroutine
// of its own, after the change that made it.
func (r *Ring0) routersChanged(t enjin.TenantID, except string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vms, err := r.store.ListVMs(ctx, t)
	if err != nil {
		r.log.Error("routes not brought up to date", "tenant", t, "err", err)
		return
	}
	for _, vm := range vms {
		if vm.ID == except || !slices.ContainsFunc(vm.Spec.NICs, func(n inventory.NIC) bool { return n.Network != enjin.DefaultNetwork }) {
			continue
		}
		if _, err := r.applyVM(ctx, vm); err != nil {
			r.log.Warn("vm not told of a router", "vm", vm.ID, "err", err)
		}
	}
	if err := r.networksChanged(ctx, t, nil); err != nil {
		r.log.Warn("app instances not told of a router", "tenant", t, "err", err)
	}
}
