package ring0

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"enjin"
	"enjin/services/inventory"
)

// vmOwner is how a VM's ports name it.
func vmOwner(id string) string { return "vm:" + id }

// checkNetworks refuses networks tenant t does not have; the node's own is always there.
func (r *Ring0) checkNetworks(ctx context.Context, t enjin.TenantID, names []string) error {
	for _, n := range names {
		if n == enjin.DefaultNetwork {
			continue
		}
		if _, err := r.store.GetNetwork(ctx, t, n); err != nil {
			return fmt.Errorf("ring0: network %s/%s: %w", t, n, err)
		}
	}
	return nil
}

// segments makes vm's ports what its NICs on tenant networks need — one per NIC, with its
// addresses from the network's IPAM; the ports of NICs it no longer has released — and
// returns each such NIC's segment by MAC.
func (r *Ring0) segments(ctx context.Context, vm inventory.VM) (map[string]*enjin.Segment, error) {
	have, err := r.store.PortsOf(ctx, vmOwner(vm.ID))
	if err != nil {
		return nil, err
	}
	out := map[string]*enjin.Segment{}
	var changed []string // rule sets whose members changed
	defer func() { r.membersChanged(vm.Tenant, compactSets(changed)) }()
	for _, nic := range vm.Spec.NICs {
		if nic.Network == enjin.DefaultNetwork {
			continue
		}
		nw, err := r.store.GetNetwork(ctx, vm.Tenant, nic.Network)
		if err != nil {
			return nil, fmt.Errorf("ring0: vm %s/%s: network %s: %w", vm.Tenant, vm.Name, nic.Network, err)
		}
		i := slices.IndexFunc(have, func(p inventory.Port) bool { return p.MAC == nic.MAC && p.Network == nw.ID })
		var p inventory.Port
		if i >= 0 {
			if p, err = r.enforce(ctx, have[i], nic.Rulesets, &changed); err != nil {
				return nil, err
			}
		} else {
			joined := r.newHost(ctx, nw.ID, vm.Node)
			if p, err = r.store.CreatePort(ctx, inventory.Port{ID: inventory.NewID(), Network: nw.ID, Tenant: vm.Tenant,
				MAC: nic.MAC, Owner: vmOwner(vm.ID), Node: vm.Node, Rulesets: nic.Rulesets, Router: nic.Router}, v6Of(nw, nic.MAC)...); err != nil {
				if errors.Is(err, inventory.ErrExists) && nic.Router {
					return nil, fmt.Errorf("ring0: network %s/%s has a router already: %w", vm.Tenant, nw.Name, inventory.ErrInvalid)
				}
				return nil, err
			}
			changed = append(changed, nic.Rulesets...)
			if nic.Router {
				defer func() { go r.routersChanged(vm.Tenant, vm.ID) }()
			}
			if joined {
				go r.peersChanged(nw, vm.Node)
			}
		}
		seg, err := r.segment(ctx, nw, p, nic.Rulesets)
		if err != nil {
			return nil, err
		}
		seg.Forward = isRouter(vm)
		if nw.DHCP || nw.Prefix6.IsValid() { // addresses, or the prefix advertised
			if seg.DHCP, err = r.dhcpServer(ctx, nw, vm.Node); err != nil {
				return nil, err
			}
		}
		out[nic.MAC] = seg
	}
	var gone []inventory.Port
	for _, p := range have {
		if _, kept := out[p.MAC]; !kept {
			if err := r.store.DeletePort(ctx, p.ID); err != nil {
				return nil, err
			}
			gone = append(gone, p)
			changed = append(changed, p.Rulesets...)
			if p.Router {
				defer func() { go r.routersChanged(vm.Tenant, vm.ID) }()
			}
		}
	}
	if len(gone) > 0 {
		r.releaseIdleDHCP(ctx, vm.Node)
		r.portsGone(ctx, gone)
	}
	return out, nil
}

// enforce records that port p enforces rule sets now, if it did others, noting in changed
// the sets whose members that changes.
func (r *Ring0) enforce(ctx context.Context, p inventory.Port, rulesets []string, changed *[]string) (inventory.Port, error) {
	if slices.Equal(p.Rulesets, rulesets) {
		return p, nil
	}
	if err := r.store.SetPortRulesets(ctx, p.ID, rulesets); err != nil {
		return p, err
	}
	*changed = append(append(*changed, p.Rulesets...), rulesets...)
	p.Rulesets = rulesets
	return p, nil
}

// portsGone tells the other hosts of each network a port of ports was on when its node
// holds no port there any more (see peersChanged).
func (r *Ring0) portsGone(ctx context.Context, ports []inventory.Port) {
	type where struct {
		network string
		node    enjin.NodeID
	}
	seen := map[where]bool{}
	for _, p := range ports {
		w := where{p.Network, p.Node}
		if seen[w] || p.Node == "" || !r.newHost(ctx, p.Network, p.Node) {
			continue
		}
		seen[w] = true
		nets, err := r.store.ListNetworks(ctx, p.Tenant)
		if err != nil {
			r.log.Warn("a network's hosts not told that one left", "network", p.Network, "node", p.Node, "err", err)
			continue
		}
		if i := slices.IndexFunc(nets, func(n inventory.Network) bool { return n.ID == p.Network }); i >= 0 {
			go r.peersChanged(nets[i], p.Node)
		}
	}
}

// compactSets is names sorted, each once.
func compactSets(names []string) []string {
	slices.Sort(names)
	return slices.Compact(names)
}

// newHost says whether node has no port on network id yet.
func (r *Ring0) newHost(ctx context.Context, id string, node enjin.NodeID) bool {
	nodes, err := r.store.NetworkNodes(ctx, id)
	return err == nil && !slices.Contains(nodes, node)
}

// peersChanged tells network nw's other hosts that node carries it now too, or no longer,
// so their ends of the segment flood to it, or stop: each of the tenant's VMs elsewhere with
// a NIC on nw is sent its state again (its segment's peers with it), and each node hosting
// the tenant's apps brings its instances' ports up to date. It runs on a goroutine of its
// own: the node that joined may be waiting for the answer that made its port.
func (r *Ring0) peersChanged(nw inventory.Network, node enjin.NodeID) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hosts, err := r.store.NetworkNodes(ctx, nw.ID)
	hosts = slices.DeleteFunc(hosts, func(n enjin.NodeID) bool { return n == node })
	if err == nil && len(hosts) == 0 {
		return // the only one: no one to tell
	}
	vms, err := r.store.ListVMs(ctx, nw.Tenant)
	if err != nil {
		r.log.Error("network's hosts not told of a new one", "network", nw.ID, "node", node, "err", err)
		return
	}
	for _, vm := range vms {
		if vm.Node == node || !slices.ContainsFunc(vm.Spec.NICs, func(n inventory.NIC) bool { return n.Network == nw.Name }) {
			continue
		}
		if _, err := r.applyVM(ctx, vm); err != nil {
			r.log.Warn("vm not told of its network's new host", "vm", vm.ID, "node", node, "err", err)
		}
	}
	if err := r.networksChanged(ctx, nw.Tenant, hosts); err != nil {
		r.log.Warn("app instances not told of their network's new host", "network", nw.ID, "node", node, "err", err)
	}
}

// segment is port p's place on network nw, enforcing rule sets.
func (r *Ring0) segment(ctx context.Context, nw inventory.Network, p inventory.Port, rulesets []string) (*enjin.Segment, error) {
	seg := &enjin.Segment{VNI: nw.VNI, Port: p.ID, Gateway: nw.Gateway4.String(), NAT: nw.NAT}
	for _, a := range p.Addresses {
		bits := nw.CIDR4.Bits()
		if a.Is6() {
			bits = nw.Prefix6.Bits()
		}
		seg.Addresses = append(seg.Addresses, netip.PrefixFrom(a, bits).String())
	}
	var err error
	if seg.Peers, err = r.peers(ctx, nw.ID, p.Node); err != nil {
		return nil, err
	}
	if seg.Filter, err = r.filter(ctx, p.Tenant, rulesets); err != nil {
		return nil, err
	}
	if seg.Routes, err = r.routes(ctx, nw, p); err != nil {
		return nil, err
	}
	if nw.NAT {
		if seg.Protected, err = r.protected(ctx); err != nil {
			return nil, err
		}
	}
	return seg, nil
}

// releasePorts gives back the addresses of every port owner has, and those of the DHCP
// servers left with no VM to answer on their host.
func (r *Ring0) releasePorts(ctx context.Context, owner string) {
	ports, err := r.store.PortsOf(ctx, owner)
	if err != nil {
		r.log.Error("ports not released", "owner", owner, "err", err)
		return
	}
	var changed []string
	for _, p := range ports {
		if err := r.store.DeletePort(ctx, p.ID); err != nil {
			r.log.Error("port not released", "owner", owner, "port", p.ID, "err", err)
		}
		changed = append(changed, p.Rulesets...)
		if p.Router {
			go r.routersChanged(p.Tenant, "")
		}
	}
	if len(ports) > 0 {
		r.membersChanged(ports[0].Tenant, compactSets(changed))
	}
	defer r.portsGone(ctx, ports) // once the DHCP servers below are gone too
	nodes := map[enjin.NodeID]bool{}
	for _, p := range ports {
		nodes[p.Node] = true
	}
	for node := range nodes {
		r.releaseIdleDHCP(ctx, node)
	}
}

// dhcpOwner is how a host's DHCP server ports name it.
func dhcpOwner(node enjin.NodeID) string { return "dhcp:" + string(node) }

// dhcpServer is network nw's server on node (DHCP, router advertisements): its port, made the
// first time, at the highest free address of the block (the low ones go to VMs, in order)
// and, with an IPv6 prefix, the prefix and its MAC's EUI-64.
func (r *Ring0) dhcpServer(ctx context.Context, nw inventory.Network, node enjin.NodeID) (*enjin.DHCP, error) {
	have, err := r.store.PortsOf(ctx, dhcpOwner(node))
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(have, func(p inventory.Port) bool { return p.Network == nw.ID })
	var p inventory.Port
	if i >= 0 {
		p = have[i]
	} else {
		a := lastHost(nw.CIDR4)
		for range 32 {
			mac := newMAC()
			p, err = r.store.CreatePort(ctx, inventory.Port{ID: inventory.NewID(), Network: nw.ID, Tenant: nw.Tenant,
				MAC: mac, Owner: dhcpOwner(node), Node: node}, append([]netip.Addr{a}, v6Of(nw, mac)...)...)
			if !errors.Is(err, inventory.ErrExists) && !errors.Is(err, inventory.ErrInvalid) {
				break
			}
			a = a.Prev()
		}
		if err != nil {
			return nil, fmt.Errorf("ring0: network %s/%s: no address for its DHCP server: %w", nw.Tenant, nw.Name, err)
		}
	}
	out := &enjin.DHCP{MAC: p.MAC, RAOnly: !nw.DHCP}
	for _, a := range p.Addresses {
		if a.Is4() {
			out.Address = netip.PrefixFrom(a, nw.CIDR4.Bits()).String()
		} else if nw.Prefix6.IsValid() {
			out.Address6 = netip.PrefixFrom(a, nw.Prefix6.Bits()).String()
		}
	}
	return out, nil
}

// releaseIdleDHCP gives back the ports of node's DHCP servers on networks where node has no
// VM's port left.
func (r *Ring0) releaseIdleDHCP(ctx context.Context, node enjin.NodeID) {
	servers, err := r.store.PortsOf(ctx, dhcpOwner(node))
	if err != nil {
		r.log.Error("dhcp ports not released", "node", node, "err", err)
		return
	}
	for _, s := range servers {
		n, err := r.store.CountPorts(ctx, s.Network, node, "vm:")
		if err == nil && n == 0 {
			if err = r.store.DeletePort(ctx, s.ID); err == nil {
				r.portsGone(ctx, []inventory.Port{s})
			}
		}
		if err != nil {
			r.log.Error("dhcp port not released", "node", node, "port", s.ID, "err", err)
		}
	}
}

// lastHost is block p's last host address (before its broadcast address).
func lastHost(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= 1<<(32-p.Bits()) - 1
	v--
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// peers are the underlay addresses of the hosts other than node with ports on network id, as
// each last said in its own signed observation.
func (r *Ring0) peers(ctx context.Context, id string, node enjin.NodeID) ([]string, error) {
	nodes, err := r.store.NetworkNodes(ctx, id)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nodes {
		if n == node {
			continue
		}
		claim, err := r.lastClaim(ctx, n)
		if err != nil || claim.Underlay == "" {
			r.log.Warn("a host of the network has no underlay address yet", "network", id, "node", n, "err", err)
			continue
		}
		if !slices.Contains(out, claim.Underlay) {
			out = append(out, claim.Underlay)
		}
	}
	return out, nil
}

// protected are the addresses no NAT gateway takes a port's traffic to: ring 0's own (its
// bus's and its API's, where they are addresses) and the underlay address of every ring 1
// node as it last claimed it.
func (r *Ring0) protected(ctx context.Context) ([]string, error) {
	var out []string
	for _, hp := range []string{r.cfg.NATSHost, r.cfg.APIAddr} {
		h := hp
		if host, _, err := net.SplitHostPort(hp); err == nil {
			h = host
		}
		if a, err := netip.ParseAddr(h); err == nil && a.Unmap().Is4() && !a.IsUnspecified() {
			out = append(out, a.Unmap().String())
		}
	}
	one := enjin.Ring1
	for after := enjin.NodeID(""); ; {
		nodes, err := r.store.ListNodes(ctx, inventory.NodeFilter{Ring: &one, After: after})
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			if claim, err := r.lastClaim(ctx, n.ID); err == nil && claim.Underlay != "" && !slices.Contains(out, claim.Underlay) {
				out = append(out, claim.Underlay)
			}
		}
		if len(nodes) < 1000 || len(out) >= enjin.MaxProtected {
			return out[:min(len(out), enjin.MaxProtected)], nil
		}
		after = nodes[len(nodes)-1].ID
	}
}

// lastClaim is node's last own observation (not one another node made of it).
func (r *Ring0) lastClaim(ctx context.Context, node enjin.NodeID) (enjin.Observation, error) {
	obs, err := r.store.Observations(ctx, node, 20, 0)
	if err != nil {
		return enjin.Observation{}, err
	}
	for _, o := range obs {
		var claim enjin.Observation
		if o.Observer == "" && json.Unmarshal(o.Payload, &claim) == nil {
			return claim, nil
		}
	}
	return enjin.Observation{}, fmt.Errorf("ring0: node %s: %w", node, errNoClaim)
}

// v6Of is the IPv6 address a NIC with mac has on network nw, if nw has an IPv6 prefix: the
// prefix and the MAC's EUI-64 interface id, which the MAC's uniqueness on the network makes
// unique, and which the guest would take by itself from a router advertisement.
func v6Of(nw inventory.Network, mac string) []netip.Addr {
	hw, err := net.ParseMAC(mac)
	if !nw.Prefix6.IsValid() || err != nil || len(hw) != 6 {
		return nil
	}
	b := nw.Prefix6.Masked().Addr().As16()
	copy(b[8:], []byte{hw[0] ^ 2, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]})
	return []netip.Addr{netip.AddrFrom16(b)}
}
