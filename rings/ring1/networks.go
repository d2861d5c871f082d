package ring1

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"enjin/supervisors/netseg"
	"enjin/supervisors/portguard"
)

// tenantNetworks is what carries the tenants' networks on this node: their segments, the
// guard on their ports, and the underlay address VXLAN goes from.
type tenantNetworks struct {
	segments *netseg.Host
	guard    *portguard.Guard
	underlay netip.Addr
	handle   *netlink.Handle
}

func (t *tenantNetworks) close() { t.handle.Close() }

// openNetworks readies the node to carry tenant networks. The underlay is Config.Underlay,
// or else the address this host reaches ring 0's bus from — the one other hosts reach it at
// too, where they reach ring 0 the same way. The guard's table is named for the apps'
// bridge, as the node's other tables are.
func (n *Node) openNetworks(bridge string) (*tenantNetworks, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	u := n.cfg.Underlay
	if !u.IsValid() {
		u = sourceTowards(n.cfg.NATSURL)
	}
	n.underlay.Store(u.String())
	g := portguard.New("enjin-ports-"+bridge, "")
	g.NAT = portguard.NAT{Uplinks: natUplinks(h, n.cfg.NATUplinks, u)}
	if a := busAddr(n.cfg.NATSURL); a.IsValid() {
		g.NAT.Protected = append(g.NAT.Protected, netip.PrefixFrom(a, 32)) // ring 0, whatever a port's rules say
	}
	n.log.Debug("NAT gateway", "uplinks", g.NAT.Uplinks, "protected", g.NAT.Protected)
	if err := g.EnableFiltering(); err != nil {
		n.log.Warn("NICs with rule sets will be refused here", "err", err)
	}
	segs := netseg.New(h, "enjin "+string(n.cfg.Node)+" "+bridge)
	return &tenantNetworks{segments: segs, guard: g, underlay: u, handle: h}, nil
}

// natUplinks are the interfaces NAT takes tenant networks out by: those named, else those
// of the IPv4 default routes, else the one holding the underlay address.
func natUplinks(h *netlink.Handle, named []string, underlay netip.Addr) []string {
	if len(named) > 0 {
		return named
	}
	var out []string
	routes, _ := h.RouteList(nil, netlink.FAMILY_V4)
	for _, r := range routes {
		if ones, _ := maskOf(r.Dst); ones == 0 && r.LinkIndex > 0 {
			if l, err := h.LinkByIndex(r.LinkIndex); err == nil && !slices.Contains(out, l.Attrs().Name) {
				out = append(out, l.Attrs().Name)
			}
		}
	}
	if len(out) > 0 {
		return out
	}
	addrs, _ := h.AddrList(nil, netlink.FAMILY_V4)
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == underlay && a.LinkIndex > 0 {
			if l, err := h.LinkByIndex(a.LinkIndex); err == nil {
				return []string{l.Attrs().Name}
			}
		}
	}
	return nil
}

// maskOf is a route destination's length; a default route's (nil) is 0.
func maskOf(dst *net.IPNet) (int, int) {
	if dst == nil {
		return 0, 32
	}
	return dst.Mask.Size()
}

// busAddr is the IPv4 address of the bus URL's host, if it is one or resolves to one.
func busAddr(natsURL string) netip.Addr {
	hp, err := natsHostPort(natsURL)
	if err != nil {
		return netip.Addr{}
	}
	host, _, _ := net.SplitHostPort(hp)
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return netip.Addr{}
		}
		ip, _ = netip.AddrFromSlice(ips[0])
	}
	if !ip.Unmap().Is4() {
		return netip.Addr{}
	}
	return ip.Unmap()
}

// sourceTowards is the address the kernel sends from to the bus URL's host; loopback if
// there is no route or the host is not an address.
func sourceTowards(natsURL string) netip.Addr {
	lo := netip.MustParseAddr("127.0.0.1")
	ip := busAddr(natsURL)
	if !ip.IsValid() {
		return lo
	}
	routes, err := netlink.RouteGet(net.IP(ip.Unmap().AsSlice()))
	if err != nil || len(routes) == 0 || routes[0].Src == nil {
		return lo
	}
	src, ok := netip.AddrFromSlice(routes[0].Src)
	if !ok {
		return lo
	}
	return src.Unmap()
}

// sweepSegments removes the segments an earlier run left that no VM here is on: app
// instances start anew, and hold what they join. Where VMs are recorded but not hosted now
// (libvirtd not answering), it removes nothing: they may be running on them.
func (n *Node) sweepSegments(tn *tenantNetworks) {
	if tn == nil {
		return
	}
	h := n.vms.Load()
	if h == nil {
		if recs, _ := os.ReadDir(filepath.Join(n.vmDir(), "vms")); len(recs) > 0 {
			n.log.Warn("segments not swept: VMs are recorded here, and this node does not host them now")
			return
		}
	}
	removed, err := tn.segments.Sweep(func(vni int) bool { return h != nil && h.UsesSegment(vni) })
	if err != nil || removed > 0 {
		n.log.Info("segments of an earlier run removed", "n", removed, "err", err)
	}
}
