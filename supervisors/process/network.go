package process

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Network is a host bridge that children join, each in a network namespace of its own
// through a veth pair, with an address from the bridge's prefix and a default route via the
// bridge. The bridge's ports are isolated: a child reaches the host side of the bridge (where
// the router is) but never another child, whatever addresses it tries.
type Network struct {
	Bridge string       // bridge name, ≤ 15 bytes
	Prefix netip.Prefix // e.g. 100.88.0.0/16; its first address is the bridge's (the gateway)

	mu   sync.Mutex
	used map[netip.Addr]bool
	last netip.Addr // addresses are handed out round robin, so a freed one rests before reuse
}

// Gateway is the bridge's address, the children's default route.
func (n *Network) Gateway() netip.Addr { return n.Prefix.Masked().Addr().Next() }

// Ensure creates the bridge with the gateway address, if missing, and brings it up.
func (n *Network) Ensure() error {
	if len(n.Bridge) == 0 || len(n.Bridge) > 15 || !n.Prefix.Addr().Is4() || n.Prefix.Bits() > 30 {
		return fmt.Errorf("process: network %q %v: want a bridge name ≤ 15 bytes and an IPv4 prefix /30 or wider", n.Bridge, n.Prefix)
	}
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		la := netlink.NewLinkAttrs()
		la.Name = n.Bridge
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("process: create bridge %s: %w", n.Bridge, err)
		}
		if br, err = netlink.LinkByName(n.Bridge); err != nil {
			return fmt.Errorf("process: bridge %s: %w", n.Bridge, err)
		}
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{IP: n.Gateway().AsSlice(), Mask: net.CIDRMask(n.Prefix.Bits(), 32)}}
	if err := netlink.AddrReplace(br, gw); err != nil {
		return fmt.Errorf("process: bridge %s address: %w", n.Bridge, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("process: bridge %s up: %w", n.Bridge, err)
	}
	return nil
}

// Endpoint is one child's place on the network.
type Endpoint struct {
	Netns  string     // path of the child's network namespace
	Addr   netip.Addr // the child's address
	HostIf string     // the host end of the veth pair
	name   string
	net    *Network
}

// Attach makes a network namespace for child id, wires it to the bridge and gives it an
// address. Close undoes it.
func (n *Network) Attach(id string) (*Endpoint, error) {
	addr, err := n.allocate()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(n.Bridge + "/" + id))
	tag := hex.EncodeToString(sum[:5])
	e := &Endpoint{Addr: addr, HostIf: "veh" + tag, name: "enjin-" + tag, net: n}
	e.Netns = filepath.Join("/run/netns", e.name)
	if err := e.wire(); err != nil {
		e.Close()
		return nil, fmt.Errorf("process: attach %s: %w", id, err)
	}
	return e, nil
}

func (e *Endpoint) wire() error {
	ns, err := newNamedNetns(e.name)
	if err != nil {
		return err
	}
	defer ns.Close()
	br, err := netlink.LinkByName(e.net.Bridge)
	if err != nil {
		return err
	}
	peer := "vep" + e.HostIf[3:]
	la := netlink.NewLinkAttrs()
	la.Name, la.MasterIndex = e.HostIf, br.Attrs().Index
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer}); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	host, err := netlink.LinkByName(e.HostIf)
	if err != nil {
		return err
	}
	// The address may have belonged to a child that is gone: forget its MAC.
	for _, nb := range mustNeighs(br.Attrs().Index) {
		if nb.IP.Equal(e.Addr.AsSlice()) {
			_ = netlink.NeighDel(&nb)
		}
	}
	if err := netlink.LinkSetIsolated(host, true); err != nil {
		return fmt.Errorf("isolate port: %w", err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return err
	}
	p, err := netlink.LinkByName(peer)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetNsFd(p, int(ns)); err != nil {
		return fmt.Errorf("move veth into netns: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	return configureInside(h, peer, e.Addr, e.net)
}

// configureInside names the child's end eth0, gives it its address, brings it and lo up and
// routes everything via the gateway.
func configureInside(h *netlink.Handle, peer string, addr netip.Addr, n *Network) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(lo); err != nil {
		return err
	}
	l, err := h.LinkByName(peer)
	if err != nil {
		return err
	}
	if err := h.LinkSetName(l, "eth0"); err != nil {
		return err
	}
	ip := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(n.Prefix.Bits(), 32)}}
	if err := h.AddrAdd(l, ip); err != nil {
		return err
	}
	if err := h.LinkSetUp(l); err != nil {
		return err
	}
	return h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: n.Gateway().AsSlice()})
}

// newNamedNetns creates /run/netns/name without leaving this goroutine's thread in it.
func newNamedNetns(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return 0, err
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name) // switches this thread into the new namespace
	if serr := netns.Set(orig); serr != nil {
		// The thread is stuck in the wrong namespace: keep it locked so the runtime
		// discards it when the goroutine ends.
		return 0, fmt.Errorf("return to the host netns: %w", serr)
	}
	runtime.UnlockOSThread()
	if err != nil {
		return 0, fmt.Errorf("create netns %s: %w", name, err)
	}
	return ns, nil
}

// Close removes the veth pair (the child's end goes with it) and the namespace, and frees
// the address.
func (e *Endpoint) Close() error {
	var errs []error
	if l, err := netlink.LinkByName(e.HostIf); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, err)
		}
	}
	if err := netns.DeleteNamed(e.name); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	e.net.release(e.Addr)
	return errors.Join(errs...)
}

func (n *Network) allocate() (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.used == nil {
		n.used = map[netip.Addr]bool{}
	}
	first := n.Gateway().Next()
	a := n.last
	if !a.IsValid() {
		a = n.Gateway()
	}
	for range 1 << (32 - n.Prefix.Bits()) {
		a = a.Next()
		if !n.Prefix.Contains(a) || !n.Prefix.Contains(a.Next()) { // the last address is broadcast
			a = first
		}
		if !n.used[a] {
			n.used[a] = true
			n.last = a
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("process: network %v: no address left", n.Prefix)
}

func (n *Network) release(a netip.Addr) {
	n.mu.Lock()
	delete(n.used, a)
	n.mu.Unlock()
}

func mustNeighs(link int) []netlink.Neigh {
	ns, _ := netlink.NeighList(link, netlink.FAMILY_V4)
	return ns
}
