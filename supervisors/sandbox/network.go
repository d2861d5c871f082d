package sandbox

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Network is a host bridge that children join, each in a network namespace of its own
// through a veth pair, with an address from the bridge's prefix and no route beyond it. The bridge's ports are isolated: a child reaches the host side of the bridge (where
// the router is) but never another child, whatever addresses it tries.
type Network struct {
	Bridge string       // bridge name, ≤ 15 bytes
	Prefix netip.Prefix // e.g. 100.88.0.0/16; its first address is the bridge's (the gateway)

	mu   sync.Mutex
	used map[netip.Addr]bool
	last netip.Addr // addresses are handed out round robin, so a freed one rests before reuse
}

// Gateway is the bridge's address: the host, as the children see it.
func (n *Network) Gateway() netip.Addr { return n.Prefix.Masked().Addr().Next() }

// Ensure creates the bridge with the gateway address, if missing, and brings it up.
func (n *Network) Ensure() error {
	if len(n.Bridge) == 0 || len(n.Bridge) > 15 || !n.Prefix.Addr().Is4() || n.Prefix.Bits() > 30 {
		return fmt.Errorf("sandbox: network %q %v: want a bridge name ≤ 15 bytes and an IPv4 prefix /30 or wider", n.Bridge, n.Prefix)
	}
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		la := netlink.NewLinkAttrs()
		la.Name = n.Bridge
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("sandbox: create bridge %s: %w", n.Bridge, err)
		}
		if br, err = netlink.LinkByName(n.Bridge); err != nil {
			return fmt.Errorf("sandbox: bridge %s: %w", n.Bridge, err)
		}
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{IP: n.Gateway().AsSlice(), Mask: net.CIDRMask(n.Prefix.Bits(), 32)}}
	if err := netlink.AddrReplace(br, gw); err != nil {
		return fmt.Errorf("sandbox: bridge %s address: %w", n.Bridge, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("sandbox: bridge %s up: %w", n.Bridge, err)
	}
	return nil
}

// Endpoint is one child's place on the network.
type Endpoint struct {
	Netns  string     // path of the child's network namespace
	Addr   netip.Addr // the child's address
	HostIf string     // the host end of the veth pair
	peer   string     // the child's end, until it moves into the namespace
	name   string     // the namespace's name under /run/netns
	net    *Network

	madeNS, madeVeth bool // what this endpoint created, and so may delete
}

// Attach makes a network namespace for the child called name, wires it to the bridge and
// gives it an address. name must be unique among the network's children for as long as they
// live (the caller allocates it, e.g. a serial number) and at most 8 bytes of [a-z0-9]: the
// namespace and the veth pair are named after it and the bridge, so no two children, and no
// two networks, share one. Attach never deletes what it did not create: if a device or
// namespace of that name exists, it fails. Close undoes it.
func (n *Network) Attach(name string) (*Endpoint, error) {
	if !validChildName(name) {
		return nil, fmt.Errorf("sandbox: attach %q: want 1–8 bytes of [a-z0-9]", name)
	}
	tag, err := n.tag()
	if err != nil {
		return nil, err
	}
	addr, err := n.allocate()
	if err != nil {
		return nil, err
	}
	e := &Endpoint{Addr: addr, HostIf: "v" + tag + "." + name, peer: "p" + tag + "." + name,
		name: n.netnsPrefix() + name, net: n}
	e.Netns = filepath.Join("/run/netns", e.name)
	if err := e.wire(); err != nil {
		e.Close()
		return nil, fmt.Errorf("sandbox: attach %s: %w", name, err)
	}
	return e, nil
}

func validChildName(s string) bool {
	if len(s) == 0 || len(s) > 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// tag names the bridge in its children's device names: its interface index, which no other
// device on the host has, in base 36 (at most 5 bytes: device names are at most 15).
func (n *Network) tag() (string, error) {
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return "", fmt.Errorf("sandbox: bridge %s: %w", n.Bridge, err)
	}
	return strconv.FormatInt(int64(br.Attrs().Index), 36), nil
}

// netnsPrefix starts the name of every namespace of this network's children.
func (n *Network) netnsPrefix() string { return "enjin-" + n.Bridge + "-" }

func (e *Endpoint) wire() error {
	ns, err := newNamedNetns(e.name)
	if err != nil {
		return err
	}
	e.madeNS = true
	defer ns.Close()
	br, err := netlink.LinkByName(e.net.Bridge)
	if err != nil {
		return err
	}
	la := netlink.NewLinkAttrs()
	la.Name, la.MasterIndex = e.HostIf, br.Attrs().Index
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: e.peer}); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	e.madeVeth = true
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
	p, err := netlink.LinkByName(e.peer)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetNsFd(p, int(ns)); err != nil {
		return fmt.Errorf("move veth into netns: %w", err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer h.Close()
	return configureInside(h, e.peer, e.Addr, e.net)
}

// configureInside names the child's end eth0, gives it its address (the prefix's route comes
// with it) and brings it and lo up.
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
	// No default route: nothing beyond the bridge is reachable (the firewall would refuse it
	// anyway), and a connection there — to the host's DNS server, say — fails at once with
	// "network unreachable" instead of waiting for packets the host drops.
	return h.LinkSetUp(l)
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

// Close removes what Attach created — the veth pair (the child's end goes with it) and the
// namespace — and frees the address.
func (e *Endpoint) Close() error {
	var errs []error
	if e.madeVeth {
		for _, name := range []string{e.HostIf, e.peer} { // the peer is still here if it never moved
			if l, err := netlink.LinkByName(name); err == nil {
				if err := netlink.LinkDel(l); err != nil {
					errs = append(errs, err)
				}
			}
		}
		e.madeVeth = false
	}
	if e.madeNS {
		if err := netns.DeleteNamed(e.name); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		e.madeNS = false
	}
	e.net.release(e.Addr)
	return errors.Join(errs...)
}

// Sweep removes what children of this network left behind when the process that made them
// died without closing them: every veth on the bridge and every namespace named for the
// network. Call it at start, before any Attach, when no child of the network runs. It
// returns how many it removed.
func (n *Network) Sweep() (int, error) {
	removed := 0
	var errs []error
	br, err := netlink.LinkByName(n.Bridge)
	if err == nil {
		tag := strconv.FormatInt(int64(br.Attrs().Index), 36)
		links, _ := netlink.LinkList()
		for _, l := range links {
			a := l.Attrs()
			ours := a.MasterIndex == br.Attrs().Index && l.Type() == "veth" ||
				strings.HasPrefix(a.Name, "p"+tag+".") || strings.HasPrefix(a.Name, "v"+tag+".")
			if !ours {
				continue
			}
			if err := netlink.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("veth %s: %w", a.Name, err))
				continue
			}
			removed++
		}
	}
	names, _ := os.ReadDir("/run/netns")
	for _, f := range names {
		if !strings.HasPrefix(f.Name(), n.netnsPrefix()) {
			continue
		}
		if err := netns.DeleteNamed(f.Name()); err != nil {
			// A half-made namespace is a file that was never mounted on.
			if rerr := os.Remove(filepath.Join("/run/netns", f.Name())); rerr != nil {
				errs = append(errs, fmt.Errorf("netns %s: %w", f.Name(), err))
				continue
			}
		}
		removed++
	}
	n.mu.Lock()
	clear(n.used)
	n.mu.Unlock()
	return removed, errors.Join(errs...)
}

// Reserve takes an address of the prefix for something on the bridge that is not a child
// process of this network — a VM's NIC — until Release.
func (n *Network) Reserve() (netip.Addr, error) { return n.allocate() }

// ReserveAddr takes address a again for what had it before a restart (a VM that kept
// running); it fails if a is not the prefix's or is taken.
func (n *Network) ReserveAddr(a netip.Addr) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.used == nil {
		n.used = map[netip.Addr]bool{}
	}
	if !n.Prefix.Contains(a) || a == n.Gateway() || n.used[a] {
		return fmt.Errorf("sandbox: network %v: address %v is not free", n.Prefix, a)
	}
	n.used[a] = true
	return nil
}

// Release gives back an address Reserve or ReserveAddr took.
func (n *Network) Release(a netip.Addr) { n.release(a) }

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
	return netip.Addr{}, fmt.Errorf("sandbox: network %v: no address left", n.Prefix)
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
