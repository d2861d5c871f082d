package vmhost

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"enjin"
	"enjin/guest"
	"enjin/supervisors/libvirt"
	"enjin/supervisors/netseg"
	"enjin/supervisors/portguard"
)

// segmentMTU is a tenant network NIC's MTU: VXLAN's headers come out of the underlay's 1500.
const segmentMTU = 1450

// tap is the host side of a NIC on a tenant network, named for its port.
func tap(s *enjin.Segment) string {
	return "et" + strings.ReplaceAll(s.Port, "-", "")[:12]
}

// checkSegment refuses a segment vmhost could not realize safely.
func checkSegment(mac string, s *enjin.Segment) error {
	if s.VNI < 1 || s.VNI > 1<<24-1 || !enjin.IsUUID(s.Port) || len(s.Peers) > 1024 || len(s.Addresses) > 16 {
		return fmt.Errorf("vmhost: nic %s: segment out of bounds", mac)
	}
	for _, p := range s.Peers {
		if a, err := netip.ParseAddr(p); err != nil || !a.Is4() {
			return fmt.Errorf("vmhost: nic %s: peer %q: want an IPv4 address", mac, p)
		}
	}
	for _, a := range s.Addresses {
		if _, err := netip.ParsePrefix(a); err != nil {
			return fmt.Errorf("vmhost: nic %s: address %q: %w", mac, a, err)
		}
	}
	if _, err := s.NATGateway(); err != nil {
		return fmt.Errorf("vmhost: nic %s: %w", mac, err)
	}
	if len(s.Protected) > enjin.MaxProtected {
		return fmt.Errorf("vmhost: nic %s: %d protected addresses", mac, len(s.Protected))
	}
	for _, p := range s.Protected {
		if a, err := netip.ParseAddr(p); err != nil || !a.Is4() {
			return fmt.Errorf("vmhost: nic %s: protected %q: want an IPv4 address", mac, p)
		}
	}
	return checkRoutes(s.Routes)
}

// checkRoutes refuses routes that are not an IPv4 block via an IPv4 address.
func checkRoutes(rs []enjin.Route) error {
	if len(rs) > 16 {
		return fmt.Errorf("vmhost: %d routes: at most 16", len(rs))
	}
	for _, r := range rs {
		if _, _, err := r.Parse(); err != nil {
			return fmt.Errorf("vmhost: %w", err)
		}
	}
	return nil
}

// join realizes NIC n's place on its tenant network before the NIC exists: the network's
// segment on this host (with the other hosts as peers), and the guard on its tap.
func (h *Host) join(n enjin.VMNIC) error {
	if h.cfg.Segments == nil || h.cfg.Guard == nil || !h.cfg.Underlay.Is4() {
		return fmt.Errorf("vmhost: nic %s on network %s: this node carries no tenant networks", n.MAC, n.Network)
	}
	if err := h.ensureSegment(n.Segment); err != nil {
		return err
	}
	if n.Segment.DHCP != nil {
		if err := h.ensureDHCP(n.Segment); err != nil {
			return err
		}
	}
	return h.cfg.Guard.Set(h.guarded(n))
}

// rejoin brings a NIC that stays on its network from what it was to n: its segment's peers
// and, if they changed, its addresses and rule sets.
func (h *Host) rejoin(was, n enjin.VMNIC) error {
	if err := h.ensureSegment(n.Segment); err != nil {
		return err
	}
	if was.Segment != nil && reflect.DeepEqual(h.guarded(was), h.guarded(n)) {
		return nil
	}
	return h.cfg.Guard.Set(h.guarded(n))
}

func (h *Host) ensureSegment(s *enjin.Segment) error {
	seg := netseg.Segment{VNI: s.VNI, Underlay: h.cfg.Underlay}
	seg.Gateway, _ = s.NATGateway() // checked
	for _, p := range s.Peers {
		if a := netip.MustParseAddr(p); a != h.cfg.Underlay { // checked
			seg.Peers = append(seg.Peers, a)
		}
	}
	if err := h.cfg.Segments.Ensure(seg); err != nil {
		return fmt.Errorf("vmhost: network %d: %w", s.VNI, err)
	}
	return nil
}

// guarded is what NIC n's tap may send as, and the rule sets it enforces.
func (h *Host) guarded(n enjin.VMNIC) portguard.Port {
	mac, _ := net.ParseMAC(n.MAC)
	p := portguard.Port{Link: tap(n.Segment), MAC: mac, Bridge: netseg.Bridge(n.Segment.VNI), Filter: n.Segment.Filter,
		Forward: n.Segment.Forward}
	for _, a := range n.Segment.Addresses {
		p.Addresses = append(p.Addresses, netip.MustParsePrefix(a).Addr()) // checked
	}
	if n.Segment.NAT {
		p.Gateway = netseg.GatewayMAC(n.Segment.VNI)
		for _, x := range slices.Concat(n.Segment.Peers, n.Segment.Protected) {
			p.Protected = append(p.Protected, netip.MustParseAddr(x)) // checked
		}
	}
	return p
}

// leave undoes join's guard for a NIC that is gone; prune takes the segment away once no VM
// here is on it.
func (h *Host) leave(n enjin.VMNIC) {
	if h.cfg.Guard == nil {
		return
	}
	if err := h.cfg.Guard.Remove(tap(n.Segment)); err != nil {
		h.log.Warn("guard not removed", "tap", tap(n.Segment), "err", err)
	}
}

// prune removes the segments of networks vnis that no VM recorded here is on (but VM except,
// being destroyed). VMs being made hold segMu's read lock from join until their record is
// saved, so a segment one of them needs is never taken from under it.
func (h *Host) prune(vnis []int, except enjin.NodeID) {
	if len(vnis) == 0 {
		return
	}
	h.segMu.Lock()
	defer h.segMu.Unlock()
	used := h.vnisInUse(except)
	for _, v := range vnis {
		h.syncDHCP(v) // the NICs gone are no longer answered; with none left, the server stops
		if slices.Contains(used, v) {
			continue
		}
		if err := h.cfg.Segments.Remove(v); err != nil {
			h.log.Warn("segment not removed", "vni", v, "err", err)
		}
	}
}

// ReleaseSegment removes network vni's segment once nothing here is on it: no VM recorded
// here, and no port holding it (an app instance's, say).
func (h *Host) ReleaseSegment(vni int) {
	h.segMu.Lock()
	defer h.segMu.Unlock()
	if slices.Contains(h.vnisInUse(""), vni) {
		return
	}
	if err := h.cfg.Segments.Remove(vni); err != nil {
		h.log.Warn("segment not removed", "vni", vni, "err", err)
	}
}

// UsesSegment says whether a VM recorded here is on network vni.
func (h *Host) UsesSegment(vni int) bool {
	h.segMu.RLock()
	defer h.segMu.RUnlock()
	return slices.Contains(h.vnisInUse(""), vni)
}

// vnisInUse lists the networks the VMs recorded here are on, but VM except's.
func (h *Host) vnisInUse(except enjin.NodeID) []int {
	var out []int
	dirs, _ := os.ReadDir(filepath.Join(h.cfg.Dir, "vms"))
	for _, d := range dirs {
		if enjin.NodeID(d.Name()) == except {
			continue
		}
		rec, ok := h.load(enjin.NodeID(d.Name()))
		if !ok {
			continue
		}
		for _, n := range rec.Request.NICs {
			if n.Segment != nil {
				out = append(out, n.Segment.VNI)
			}
		}
	}
	return out
}

// libvirtNIC is NIC n as libvirt makes it: on the node's bridge, an isolated port; on a
// tenant network, a port of its segment's bridge with a tap named for its port.
func (h *Host) libvirtNIC(n enjin.VMNIC) libvirt.NIC {
	if n.Segment == nil {
		return libvirt.NIC{MAC: n.MAC, Bridge: h.cfg.Bridge, Isolated: true}
	}
	return libvirt.NIC{MAC: n.MAC, Bridge: netseg.Bridge(n.Segment.VNI), Tap: tap(n.Segment), MTU: segmentMTU}
}

// links is what the guest is told of its NICs on tenant networks.
func links(req enjin.VMRequest) []guest.Link {
	var out []guest.Link
	for _, n := range req.NICs {
		if n.Segment == nil {
			continue
		}
		l := guest.Link{MAC: strings.ToLower(n.MAC), Forward: n.Segment.Forward}
		for _, a := range n.Segment.Addresses {
			l.Addresses = append(l.Addresses, netip.MustParsePrefix(a)) // checked
		}
		for _, r := range n.Segment.Routes {
			l.Routes = append(l.Routes, guest.Route{To: netip.MustParsePrefix(r.To), Via: netip.MustParseAddr(r.Via)}) // checked
		}
		out = append(out, l)
	}
	return out
}

// restoreSegments realizes the tenant networks of the VMs a restarted node adopts and guards
// all their taps in one go, before anything else changes.
func (h *Host) restoreSegments(recs []record) error {
	var ports []portguard.Port
	for _, r := range recs {
		for _, n := range r.Request.NICs {
			if n.Segment == nil {
				continue
			}
			if h.cfg.Guard == nil || h.cfg.Segments == nil {
				return fmt.Errorf("vmhost: vm %s has a NIC on a tenant network, and this node carries none", r.Request.ID)
			}
			if err := h.ensureSegment(n.Segment); err != nil {
				return err
			}
			ports = append(ports, h.guarded(n))
		}
	}
	if h.cfg.Guard == nil {
		return nil
	}
	// A restarted node's DHCP servers start again (each replacing the one its predecessor
	// left), all guarded in the same transaction as the VMs' ports.
	h.dhcpMu.Lock()
	for _, r := range recs {
		for _, n := range r.Request.NICs {
			if n.Segment == nil || n.Segment.DHCP == nil || h.dhcp[n.Segment.VNI] != nil {
				continue
			}
			srv, port, err := h.startDHCP(n.Segment)
			if err != nil {
				h.log.Error("dhcp server not restarted", "vni", n.Segment.VNI, "err", err)
				continue
			}
			h.dhcp[n.Segment.VNI] = srv
			ports = append(ports, port)
		}
	}
	vnis := slices.Collect(maps.Keys(h.dhcp))
	h.dhcpMu.Unlock()
	if err := h.cfg.Guard.SetAll(ports); err != nil {
		return err
	}
	for _, v := range vnis {
		h.syncDHCP(v)
	}
	return nil
}

// segmentVNIs are the networks of nics on tenant networks; with dhcp, only those answering DHCP.
func segmentVNIs(nics []enjin.VMNIC, dhcp bool) []int {
	var out []int
	for _, n := range nics {
		if n.Segment != nil && (!dhcp || n.Segment.DHCP != nil) {
			out = append(out, n.Segment.VNI)
		}
	}
	return out
}
