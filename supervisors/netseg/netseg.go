// Package netseg realizes a tenant network's L2 segment on a ring 1 host: a Linux bridge and a
// VXLAN device for the network's VNI (UDP 4789 from the host's underlay address, learning
// off), with the other hosts on the network given as forwarding entries — flooding goes to
// each of them by unicast; there is no multicast. Ports (VM taps, app veths) join the bridge.
//
// Everything is done through a netlink handle, so a host in a network namespace of its own
// (several "hosts" on one machine) is realized the same way as the machine itself. Ensure is
// idempotent: asking again with other peers adds and removes only the difference.
//
// Ring 1, services/vmhost, cmd/enjin and bench (`enjin bench net`) import netseg; netseg
// imports netlink, netns and the standard library.
package netseg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Port is the IANA VXLAN port.
const Port = 4789

// overhead is what VXLAN over IPv4 adds to a frame: outer IPv4, UDP, VXLAN and inner Ethernet.
const overhead = 50

// Segment is one network's segment on this host.
type Segment struct {
	VNI      int
	Underlay netip.Addr   // this host's address on the underlay: the VXLAN source
	Peers    []netip.Addr // the other hosts on the network, by their underlay addresses
	MTU      int          // the underlay's MTU; 0: 1500
	// Gateway, if set, is the network's NAT gateway: the bridge holds this address, with
	// GatewayMAC's address, so that the host answers as the gateway on its end of the
	// segment, as every other host carrying it does on its own.
	Gateway netip.Prefix
}

// GatewayMAC is the MAC of network vni's NAT gateway on every host: locally administered,
// 02:65:6e ("en") and the VNI.
func GatewayMAC(vni int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x65, 0x6e, byte(vni >> 16), byte(vni >> 8), byte(vni)}
}

// addrGenModeNone is IN6_ADDR_GEN_MODE_NONE: the kernel gives the device no IPv6 address.
const addrGenModeNone = 1

// Bridge is the name of the bridge of network vni.
func Bridge(vni int) string { return fmt.Sprintf("enjn%d", vni) }

// VXLAN is the name of the VXLAN device of network vni.
func VXLAN(vni int) string { return fmt.Sprintf("enjx%d", vni) }

// Host realizes segments through one netlink handle (one network namespace), for one owner.
type Host struct {
	h     *netlink.Handle
	owner string // the alias of every device it makes; another owner's devices it refuses

	mu    sync.Mutex
	holds map[int]map[string]bool // by VNI: the ports that keep its segment here
}

// New makes a Host that works through h for owner (a ring 1 node: unique among the clouds
// on the machine). Device names come from VNIs alone, and two clouds on one machine number
// their networks alike: owner, kept as each device's alias, is what tells the devices of one
// from the other's, so a segment is never shared between clouds — the second to ask fails.
func New(h *netlink.Handle, owner string) *Host {
	return &Host{h: h, owner: owner, holds: map[int]map[string]bool{}}
}

// Hold ensures segment s (as Ensure) on behalf of port, which keeps it here: Remove leaves a
// held segment alone. Holding again (with other peers, say) is Ensure again.
func (h *Host) Hold(port string, s Segment) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.ensure(s); err != nil {
		return err
	}
	if h.holds[s.VNI] == nil {
		h.holds[s.VNI] = map[string]bool{}
	}
	h.holds[s.VNI][port] = true
	return nil
}

// Drop ends port's hold on network vni's segment; it says whether any hold is left. The
// segment stays until Remove.
func (h *Host) Drop(port string, vni int) (held bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.holds[vni], port)
	if len(h.holds[vni]) == 0 {
		delete(h.holds, vni)
		return false
	}
	return true
}

func (s Segment) check() error {
	switch {
	case s.VNI < 1 || s.VNI > 1<<24-1:
		return fmt.Errorf("netseg: vni %d: want 1 to 16777215", s.VNI)
	case !s.Underlay.Is4():
		return fmt.Errorf("netseg: vni %d: underlay %v: want an IPv4 address", s.VNI, s.Underlay)
	case s.Gateway.IsValid() && (!s.Gateway.Addr().Is4() || s.Gateway.Bits() < 8 || s.Gateway.Bits() > 30):
		return fmt.Errorf("netseg: vni %d: gateway %v: want an IPv4 address with its block's length", s.VNI, s.Gateway)
	}
	for _, p := range s.Peers {
		if !p.Is4() || p == s.Underlay {
			return fmt.Errorf("netseg: vni %d: peer %v: want another host's IPv4 underlay address", s.VNI, p)
		}
	}
	return nil
}

// Ensure makes segment s as asked: the bridge, the VXLAN device on it, both up, and one
// flooding entry per peer (stale ones removed).
func (h *Host) Ensure(s Segment) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ensure(s)
}

func (h *Host) ensure(s Segment) error {
	if err := s.check(); err != nil {
		return err
	}
	mtu := s.MTU
	if mtu == 0 {
		mtu = 1500
	}
	snoop := false // multicast goes to every port: guests' IPv6 neighbour discovery needs no querier
	br, err := h.link(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: Bridge(s.VNI), MTU: mtu - overhead}, MulticastSnooping: &snoop})
	if err != nil {
		return err
	}
	vx, err := h.link(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: VXLAN(s.VNI), MTU: mtu - overhead, MasterIndex: br.Attrs().Index},
		VxlanId: s.VNI, SrcAddr: net.IP(s.Underlay.AsSlice()), Port: Port, Learning: false})
	if err != nil {
		return err
	}
	if v, ok := vx.(*netlink.Vxlan); ok && (v.VxlanId != s.VNI || !v.SrcAddr.Equal(net.IP(s.Underlay.AsSlice())) || v.Learning) {
		return fmt.Errorf("netseg: %s exists with other settings (vni %d, local %v, learning %t)", VXLAN(s.VNI), v.VxlanId, v.SrcAddr, v.Learning)
	}
	if vx.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.h.LinkSetMaster(vx, br); err != nil {
			return fmt.Errorf("netseg: %s into %s: %w", vx.Attrs().Name, br.Attrs().Name, err)
		}
	}
	if s.Gateway.IsValid() {
		if err := h.gateway(br, s); err != nil {
			return err
		}
	}
	for _, l := range []netlink.Link{br, vx} {
		// The host takes no part in the segment: no IPv6 link-local address of its own there.
		// (Where IPv6 is off this fails, and there is nothing to prevent.)
		h.h.LinkSetIP6AddrGenMode(l, addrGenModeNone)
		if err := h.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("netseg: %s up: %w", l.Attrs().Name, err)
		}
	}
	return h.syncPeers(vx, s.Peers)
}

// gateway makes the bridge the network's NAT gateway here: its MAC and address.
func (h *Host) gateway(br netlink.Link, s Segment) error {
	mac := GatewayMAC(s.VNI)
	if !slices.Equal(br.Attrs().HardwareAddr, mac) {
		if err := h.h.LinkSetHardwareAddr(br, mac); err != nil {
			return fmt.Errorf("netseg: %s gateway MAC: %w", br.Attrs().Name, err)
		}
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: s.Gateway.Addr().AsSlice(), Mask: net.CIDRMask(s.Gateway.Bits(), 32)}}
	if err := h.h.AddrReplace(br, a); err != nil {
		return fmt.Errorf("netseg: %s gateway %v: %w", br.Attrs().Name, s.Gateway, err)
	}
	return nil
}

// link returns the link named as l, creating it if there is none; one of another kind is an
// error.
func (h *Host) link(l netlink.Link) (netlink.Link, error) {
	name := l.Attrs().Name
	got, err := h.h.LinkByName(name)
	if err == nil {
		if got.Type() != l.Type() {
			return nil, fmt.Errorf("netseg: %s exists as a %s, not a %s", name, got.Type(), l.Type())
		}
		switch got.Attrs().Alias {
		case h.owner:
			return got, nil
		case "": // made before devices had owners, or by a maker that died before naming it
			return got, h.claim(got)
		}
		return nil, fmt.Errorf("netseg: %s belongs to %q, not %q: another cloud on this machine uses this VNI", name, got.Attrs().Alias, h.owner)
	}
	if !errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil, fmt.Errorf("netseg: %s: %w", name, err)
	}
	if err := h.h.LinkAdd(l); err != nil {
		return nil, fmt.Errorf("netseg: add %s: %w", name, err)
	}
	got, err = h.h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("netseg: %s: %w", name, err)
	}
	return got, h.claim(got)
}

func (h *Host) claim(l netlink.Link) error {
	if err := h.h.LinkSetAlias(l, h.owner); err != nil {
		return fmt.Errorf("netseg: %s: owner: %w", l.Attrs().Name, err)
	}
	return nil
}

// zeroMAC is the forwarding entry's address for flooding: broadcast, unknown unicast and
// multicast frames go to every host that has one.
var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// syncPeers makes the VXLAN device's flooding entries exactly peers.
func (h *Host) syncPeers(vx netlink.Link, peers []netip.Addr) error {
	have, err := h.h.NeighList(vx.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return fmt.Errorf("netseg: %s entries: %w", vx.Attrs().Name, err)
	}
	entry := func(ip netip.Addr) *netlink.Neigh {
		return &netlink.Neigh{LinkIndex: vx.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: netlink.NUD_PERMANENT | netlink.NUD_NOARP, HardwareAddr: zeroMAC, IP: net.IP(ip.AsSlice())}
	}
	var present []netip.Addr
	for _, n := range have {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.HardwareAddr.String() != zeroMAC.String() {
			continue
		}
		ip = ip.Unmap()
		if !slices.Contains(peers, ip) {
			if err := h.h.NeighDel(entry(ip)); err != nil {
				return fmt.Errorf("netseg: %s: drop peer %v: %w", vx.Attrs().Name, ip, err)
			}
			continue
		}
		present = append(present, ip)
	}
	for _, p := range peers {
		if slices.Contains(present, p) {
			continue
		}
		if err := h.h.NeighAppend(entry(p)); err != nil {
			return fmt.Errorf("netseg: %s: add peer %v: %w", vx.Attrs().Name, p, err)
		}
	}
	return nil
}

// Attach puts link (a VM's tap, an app instance's host-side veth) on network vni's bridge.
func (h *Host) Attach(vni int, link string) error {
	br, err := h.h.LinkByName(Bridge(vni))
	if err != nil {
		return fmt.Errorf("netseg: network %d is not on this host: %w", vni, err)
	}
	if br.Attrs().Alias != h.owner {
		return fmt.Errorf("netseg: %s belongs to %q, not %q", br.Attrs().Name, br.Attrs().Alias, h.owner)
	}
	l, err := h.h.LinkByName(link)
	if err != nil {
		return fmt.Errorf("netseg: %s: %w", link, err)
	}
	if err := h.h.LinkSetMaster(l, br); err != nil {
		return fmt.Errorf("netseg: %s into %s: %w", link, br.Attrs().Name, err)
	}
	return nil
}

// Remove deletes network vni's VXLAN device and bridge; ports still on it fall off. Removing
// what is not there is not an error; a segment a port holds (see Hold), or another owner's,
// is left as it is.
func (h *Host) Remove(vni int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.holds[vni]) > 0 {
		return nil
	}
	return h.remove(vni)
}

// Sweep removes the segments of this owner that no port holds and keep does not want: what
// an earlier run left when it died before it could remove them. It returns how many it
// removed.
func (h *Host) Sweep(keep func(vni int) bool) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	links, err := h.h.LinkList()
	if err != nil {
		return 0, fmt.Errorf("netseg: sweep: %w", err)
	}
	n := 0
	var errs []error
	for _, l := range links {
		vni, err := strconv.Atoi(strings.TrimPrefix(l.Attrs().Name, "enjn"))
		if l.Attrs().Alias != h.owner || l.Type() != "bridge" || err != nil || Bridge(vni) != l.Attrs().Name ||
			len(h.holds[vni]) > 0 || keep(vni) {
			continue
		}
		if err := h.remove(vni); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func (h *Host) remove(vni int) error {
	for _, name := range []string{VXLAN(vni), Bridge(vni)} {
		l, err := h.h.LinkByName(name)
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			continue
		}
		if err != nil {
			return fmt.Errorf("netseg: %s: %w", name, err)
		}
		if a := l.Attrs().Alias; a != "" && a != h.owner {
			continue // another cloud's
		}
		if err := h.h.LinkDel(l); err != nil {
			return fmt.Errorf("netseg: delete %s: %w", name, err)
		}
	}
	return nil
}
