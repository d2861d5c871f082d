package ring1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"enjin"
	"enjin/bus"
	"enjin/services/apphost"
	"enjin/supervisors/netseg"
	"enjin/supervisors/portguard"
)

// appNetworks wires app instances into their tenant's networks (apphost.Networks): ring 0
// makes the ports (bus.ServicePorts); this node holds each port's segment, guards the port
// before its veth exists, and puts the veth's inside end, with the port's MAC and addresses,
// in the instance's network namespace.
type appNetworks struct {
	log     *slog.Logger
	nc      *nats.Conn
	tn      *tenantNetworks
	release func(vni int) // removes a segment no port holds, unless a VM here is on it

	mu     sync.Mutex
	joined map[string]*joinedInstance // by instance id
}

// joinedInstance is one instance's ports; its mu serializes what is done to them.
type joinedInstance struct {
	mu     sync.Mutex
	tenant enjin.TenantID
	netns  string
	nets   []enjin.AppNetwork
	ports  []bus.AppPort
	gone   bool
}

// appMTU is an instance's MTU on a tenant network, as a VM's.
const appMTU = 1450

func newAppNetworks(log *slog.Logger, nc *nats.Conn, tn *tenantNetworks, release func(int)) *appNetworks {
	return &appNetworks{log: log, nc: nc, tn: tn, release: release, joined: map[string]*joinedInstance{}}
}

// Join implements apphost.Networks.
func (a *appNetworks) Join(ctx context.Context, t enjin.TenantID, instance, ns string, nets []enjin.AppNetwork) ([]apphost.Attachment, error) {
	j := &joinedInstance{tenant: t, netns: ns, nets: nets}
	j.mu.Lock()
	defer j.mu.Unlock()
	a.mu.Lock()
	if a.joined[instance] != nil {
		a.mu.Unlock()
		return nil, fmt.Errorf("ring1: instance %s joined its networks already", instance)
	}
	a.joined[instance] = j
	a.mu.Unlock()
	atts, err := a.apply(ctx, instance, j)
	if err != nil {
		a.leave(instance, j)
		return nil, err
	}
	return atts, nil
}

// Update implements apphost.Networks.
func (a *appNetworks) Update(ctx context.Context, t enjin.TenantID, instance string) ([]apphost.Attachment, bool, error) {
	a.mu.Lock()
	j := a.joined[instance]
	a.mu.Unlock()
	if j == nil || j.tenant != t {
		return nil, false, nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.gone {
		return nil, false, nil
	}
	atts, err := a.apply(ctx, instance, j)
	return atts, err == nil, err
}

// Leave implements apphost.Networks.
func (a *appNetworks) Leave(t enjin.TenantID, instance string) {
	a.mu.Lock()
	j := a.joined[instance]
	a.mu.Unlock()
	if j == nil || j.tenant != t {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	a.leave(instance, j)
}

// Sweep implements apphost.Networks.
func (a *appNetworks) Sweep(keep []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := bus.Request[bus.PortsRequest, bus.PortsReply](ctx, a.nc, bus.R1Ring0(bus.ServicePorts),
		bus.PortsRequest{Sweep: true, Keep: keep}); err != nil {
		a.log.Warn("ports of app instances gone not released", "err", err)
	}
}

// apply asks ring 0 for the instance's ports and makes them so here: the ones it has brought
// up to date (peers, rule sets), new ones wired, ones gone unwired. Called with j.mu held.
func (a *appNetworks) apply(ctx context.Context, instance string, j *joinedInstance) ([]apphost.Attachment, error) {
	rep, err := bus.Request[bus.PortsRequest, bus.PortsReply](ctx, a.nc, bus.R1Ring0(bus.ServicePorts),
		bus.PortsRequest{Tenant: j.tenant, Instance: instance, Networks: j.nets})
	if err != nil {
		return nil, fmt.Errorf("ring1: ports of instance %s: %w", instance, err)
	}
	if len(rep.Ports) != len(j.nets) {
		return nil, fmt.Errorf("ring1: ports of instance %s: %d for %d networks", instance, len(rep.Ports), len(j.nets))
	}
	was := j.ports
	var atts []apphost.Attachment
	for i, p := range rep.Ports {
		guarded, err := a.guarded(p)
		if err != nil {
			return nil, err
		}
		j.ports = append(j.ports, p) // from here on, leave undoes it
		if err := a.tn.segments.Hold(p.Segment.Port, a.segment(p.Segment)); err != nil {
			return nil, fmt.Errorf("ring1: network %s: %w", p.Network, err)
		}
		if err := a.tn.guard.Set(guarded); err != nil {
			return nil, fmt.Errorf("ring1: network %s: guard: %w", p.Network, err)
		}
		ifname := "eth" + strconv.Itoa(i+1)
		if !hasPort(was, p.Segment.Port) {
			if err := a.wire(j.netns, ifname, p, guarded); err != nil {
				return nil, fmt.Errorf("ring1: network %s: %w", p.Network, err)
			}
		}
		if err := syncRoutes(j.netns, ifname, p.Segment.Routes); err != nil {
			return nil, fmt.Errorf("ring1: network %s: %w", p.Network, err)
		}
		atts = append(atts, apphost.Attachment{Network: p.Network, Interface: ifname, MAC: p.MAC, Addresses: p.Segment.Addresses})
	}
	for _, p := range was {
		if !hasPort(rep.Ports, p.Segment.Port) {
			a.unwire(p)
		}
	}
	j.ports = rep.Ports
	return atts, nil
}

func hasPort(ps []bus.AppPort, id string) bool {
	for _, p := range ps {
		if p.Segment.Port == id {
			return true
		}
	}
	return false
}

// hostLink is the host side of an instance's port: its veth named for the port.
func hostLink(port string) string { return "ea" + strings.ReplaceAll(port, "-", "")[:12] }

// guarded is what port p may send as, and the rule sets it enforces; an error if ring 0's
// answer is not one this node could realize safely.
func (a *appNetworks) guarded(p bus.AppPort) (portguard.Port, error) {
	s := p.Segment
	mac, err := net.ParseMAC(p.MAC)
	if err != nil || len(mac) != 6 || !enjin.IsUUID(s.Port) || s.VNI < 1 || s.VNI > 1<<24-1 || s.Filter == nil ||
		len(s.Addresses) == 0 || len(s.Addresses) > 16 || len(s.Peers) > 1024 || len(s.Routes) > 16 || s.Forward {
		return portguard.Port{}, fmt.Errorf("ring1: network %s: port out of bounds", p.Network)
	}
	for _, r := range s.Routes {
		if _, _, err := r.Parse(); err != nil {
			return portguard.Port{}, fmt.Errorf("ring1: network %s: %w", p.Network, err)
		}
	}
	g := portguard.Port{Link: hostLink(s.Port), MAC: mac, Bridge: netseg.Bridge(s.VNI), Filter: s.Filter}
	if _, err := s.NATGateway(); err != nil {
		return portguard.Port{}, fmt.Errorf("ring1: network %s: %w", p.Network, err)
	}
	if s.NAT {
		g.Gateway = netseg.GatewayMAC(s.VNI)
	}
	for _, x := range s.Addresses {
		pf, err := netip.ParsePrefix(x)
		if err != nil {
			return portguard.Port{}, fmt.Errorf("ring1: network %s: address %q: %w", p.Network, x, err)
		}
		g.Addresses = append(g.Addresses, pf.Addr())
	}
	for _, x := range s.Peers {
		pa, err := netip.ParseAddr(x)
		if err != nil || !pa.Is4() {
			return portguard.Port{}, fmt.Errorf("ring1: network %s: peer %q: want an IPv4 address", p.Network, x)
		}
		if s.NAT {
			g.Protected = append(g.Protected, pa)
		}
	}
	if len(s.Protected) > enjin.MaxProtected {
		return portguard.Port{}, fmt.Errorf("ring1: network %s: %d protected addresses", p.Network, len(s.Protected))
	}
	for _, x := range s.Protected {
		pa, err := netip.ParseAddr(x)
		if err != nil || !pa.Is4() {
			return portguard.Port{}, fmt.Errorf("ring1: network %s: protected %q: want an IPv4 address", p.Network, x)
		}
		g.Protected = append(g.Protected, pa)
	}
	return g, nil
}

// segment is s's segment on this host: the other hosts as peers, VXLAN from the underlay.
func (a *appNetworks) segment(s enjin.Segment) netseg.Segment {
	seg := netseg.Segment{VNI: s.VNI, Underlay: a.tn.underlay}
	seg.Gateway, _ = s.NATGateway() // checked by guarded
	for _, x := range s.Peers {
		if pa := netip.MustParseAddr(x); pa != a.tn.underlay { // checked by guarded
			seg.Peers = append(seg.Peers, pa)
		}
	}
	return seg
}

// wire makes port p's veth: the host end on the segment's bridge, the other end, ifname, in
// the instance's namespace at nsPath with the port's MAC and addresses.
func (a *appNetworks) wire(nsPath, ifname string, p bus.AppPort, g portguard.Port) error {
	ns, in, err := inside(nsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	defer in.Close()
	h := a.tn.handle
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = g.Link, appMTU
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: ifname, PeerHardwareAddr: g.MAC,
		PeerNamespace: netlink.NsFd(ns)}); err != nil {
		return fmt.Errorf("veth %s: %w", g.Link, err)
	}
	if err := a.tn.segments.Attach(p.Segment.VNI, g.Link); err != nil {
		return err
	}
	host, err := h.LinkByName(g.Link)
	if err != nil {
		return err
	}
	h.LinkSetIP6AddrGenMode(host, 1) // the host takes no part in the segment (see netseg)
	if err := h.LinkSetUp(host); err != nil {
		return err
	}
	l, err := in.LinkByName(ifname)
	if err != nil {
		return err
	}
	if err := in.LinkSetMTU(l, appMTU); err != nil {
		return err
	}
	for _, x := range p.Segment.Addresses {
		addr, err := netlink.ParseAddr(x)
		if err != nil {
			return err
		}
		if addr.IP.To4() == nil {
			addr.Flags = unix.IFA_F_NODAD // the address is the port's alone: ring 0 and the guard see to it
		}
		if err := in.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("address %s: %w", x, err)
		}
	}
	if err := in.LinkSetUp(l); err != nil {
		return err
	}
	// Announced, twice as RFC 5227 has it (a veth's first frames do not always get out): its
	// address may have been another port's a moment ago, and the neighbours that knew that
	// one would go on sending to its MAC until their entries time out.
	go func() { // ends after the second announcement
		for _, wait := range []time.Duration{50 * time.Millisecond, time.Second} {
			time.Sleep(wait)
			if err := netseg.Announce(filepath.Base(nsPath), ifname, g.MAC, g.Addresses); err != nil {
				a.log.Debug("port not announced", "link", g.Link, "err", err) // the instance may be gone
				return
			}
		}
	}()
	return nil
}

// inside opens the instance's network namespace at nsPath and a netlink handle into it; the
// caller closes both.
func inside(nsPath string) (netns.NsHandle, *netlink.Handle, error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return 0, nil, fmt.Errorf("instance namespace: %w", err)
	}
	in, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return 0, nil, fmt.Errorf("instance namespace: %w", err)
	}
	return ns, in, nil
}

// syncRoutes makes the routes through routers on link ifname, in the instance's namespace at
// nsPath, exactly routes: each replaced, any other through a router there removed.
func syncRoutes(nsPath, ifname string, routes []enjin.Route) error {
	ns, in, err := inside(nsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	defer in.Close()
	l, err := in.LinkByName(ifname)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, r := range routes {
		to, via, _ := r.Parse() // checked
		rt := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: via.AsSlice()}
		if to.Bits() > 0 {
			rt.Dst = &net.IPNet{IP: to.Addr().AsSlice(), Mask: net.CIDRMask(to.Bits(), 32)}
		}
		if err := in.RouteReplace(rt); err != nil {
			return fmt.Errorf("route %s via %s: %w", r.To, r.Via, err)
		}
		want[to.String()] = true
	}
	have, err := in.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, rt := range have {
		to := "0.0.0.0/0"
		if rt.Dst != nil {
			to = rt.Dst.String()
		}
		if rt.Gw != nil && !want[to] {
			if err := in.RouteDel(&rt); err != nil {
				return fmt.Errorf("route %s: %w", to, err)
			}
		}
	}
	return nil
}

// unwire takes port p away here: its guard, its veth (if the namespace has not taken it
// already) and its hold on the segment, which goes once nothing is on it.
func (a *appNetworks) unwire(p bus.AppPort) {
	link := hostLink(p.Segment.Port)
	if err := a.tn.guard.Remove(link); err != nil {
		a.log.Warn("guard not removed", "link", link, "err", err)
	}
	if l, err := a.tn.handle.LinkByName(link); err == nil {
		if err := a.tn.handle.LinkDel(l); err != nil && !errors.As(err, new(netlink.LinkNotFoundError)) {
			a.log.Warn("veth not removed", "link", link, "err", err)
		}
	}
	if !a.tn.segments.Drop(p.Segment.Port, p.Segment.VNI) {
		a.release(p.Segment.VNI)
	}
}

// leave unwires every port of the instance and has ring 0 release them. Called with j.mu held.
func (a *appNetworks) leave(instance string, j *joinedInstance) {
	for _, p := range j.ports {
		a.unwire(p)
	}
	j.ports, j.gone = nil, true
	a.mu.Lock()
	if a.joined[instance] == j {
		delete(a.joined, instance)
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := bus.Request[bus.PortsRequest, bus.PortsReply](ctx, a.nc, bus.R1Ring0(bus.ServicePorts),
		bus.PortsRequest{Tenant: j.tenant, Instance: instance}); err != nil {
		a.log.Warn("ports of an instance not released", "instance", instance, "err", err)
	}
}

// networksChanged answers bus.VerbNetworks: the tenant's app instances here ask ring 0 for
// their ports again, on a goroutine of its own, answering once they have.
func (n *Node) networksChanged(m *nats.Msg) (any, error) {
	var req bus.NetworksRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	if err := req.Tenant.Validate(); err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	h := n.apps.Load()
	if h == nil {
		return struct{}{}, nil // no instance here to bring up to date
	}
	go func() { // ends when the instances are done; bounded by its deadline
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		bus.Reply(m, struct{}{}, h.NetworksChanged(ctx, req.Tenant))
	}()
	return nil, bus.ErrReplyLater
}
