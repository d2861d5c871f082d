// Package fabric makes the underlay of ring 1 hosts simulated on one machine — what `enjin up
// --ring1 N` runs its extra hosts on: a Linux bridge holding the gateway address, and for each
// host a network namespace of its own, joined to the bridge by a veth whose inside end, eth0,
// holds the host's address. Everything is named by the caller, made only if missing (a
// restarted `enjin up` finds its hosts where they were) and removed by Remove.
//
// fabric imports netlink and netns; cmd/enjin imports it.
package fabric

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Host is one simulated host: its network namespace and its address on the fabric.
type Host struct {
	Netns string
	Addr  netip.Addr
}

// Fabric is a bridge with the gateway address and the hosts behind it.
type Fabric struct {
	Bridge  string
	Gateway netip.Addr
	Prefix  netip.Prefix
	Hosts   []Host
}

// Plan lays out a fabric on bridge in prefix (an IPv4 block of at least len(netnss)+2
// addresses): the gateway takes its first host address, host i the next ones in order.
func Plan(bridge string, prefix netip.Prefix, netnss []string) (*Fabric, error) {
	prefix = prefix.Masked()
	if !prefix.Addr().Is4() || prefix.Bits() > 30 || 1<<(32-prefix.Bits()) < len(netnss)+3 {
		return nil, fmt.Errorf("fabric: %s is no IPv4 block with room for a gateway and %d hosts", prefix, len(netnss))
	}
	if len(bridge) == 0 || len(bridge)+1+len(fmt.Sprint(len(netnss))) > 15 {
		return nil, fmt.Errorf("fabric: bridge name %q: want 1 to %d characters", bridge, 14-len(fmt.Sprint(len(netnss))))
	}
	f := &Fabric{Bridge: bridge, Prefix: prefix, Gateway: prefix.Addr().Next()}
	a := f.Gateway
	for _, ns := range netnss {
		a = a.Next()
		f.Hosts = append(f.Hosts, Host{Netns: ns, Addr: a})
	}
	return f, nil
}

// veth is host i's veth end on the bridge.
func (f *Fabric) veth(i int) string { return fmt.Sprintf("%sv%d", f.Bridge, i) }

// Ensure makes what is missing of f.
func (f *Fabric) Ensure() error {
	br, err := netlink.LinkByName(f.Bridge)
	if err != nil {
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: f.Bridge}}); err != nil {
			return fmt.Errorf("fabric: bridge %s: %w", f.Bridge, err)
		}
		if br, err = netlink.LinkByName(f.Bridge); err != nil {
			return fmt.Errorf("fabric: bridge %s: %w", f.Bridge, err)
		}
	}
	gw := &netlink.Addr{IPNet: ipNet(f.Gateway, f.Prefix.Bits())}
	if err := netlink.AddrReplace(br, gw); err != nil {
		return fmt.Errorf("fabric: %s on %s: %w", f.Gateway, f.Bridge, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("fabric: %s up: %w", f.Bridge, err)
	}
	for i, h := range f.Hosts {
		if err := f.ensureHost(i+1, h, br); err != nil {
			return err
		}
	}
	return nil
}

// ensureHost makes host h's namespace, its veth on br and its address, if missing.
func (f *Fabric) ensureHost(i int, h Host, br netlink.Link) error {
	ns, err := netns.GetFromName(h.Netns)
	if err != nil {
		if ns, err = newNamed(h.Netns); err != nil {
			return fmt.Errorf("fabric: namespace %s: %w", h.Netns, err)
		}
	}
	defer ns.Close()
	in, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("fabric: into %s: %w", h.Netns, err)
	}
	defer in.Close()
	if _, err := in.LinkByName("eth0"); err != nil {
		netlink.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: f.veth(i)}}) // an end left without its peer
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: f.veth(i), MasterIndex: br.Attrs().Index},
			PeerName: "eth0", PeerNamespace: netlink.NsFd(ns)}
		if err := netlink.LinkAdd(v); err != nil {
			return fmt.Errorf("fabric: veth %s to %s: %w", f.veth(i), h.Netns, err)
		}
	}
	out, err := netlink.LinkByName(f.veth(i))
	if err == nil {
		err = netlink.LinkSetUp(out)
	}
	if err != nil {
		return fmt.Errorf("fabric: veth %s: %w", f.veth(i), err)
	}
	eth0, err := in.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("fabric: eth0 in %s: %w", h.Netns, err)
	}
	if err := in.AddrReplace(eth0, &netlink.Addr{IPNet: ipNet(h.Addr, f.Prefix.Bits())}); err != nil {
		return fmt.Errorf("fabric: %s in %s: %w", h.Addr, h.Netns, err)
	}
	if err := in.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("fabric: eth0 up in %s: %w", h.Netns, err)
	}
	if lo, err := in.LinkByName("lo"); err == nil {
		if err := in.LinkSetUp(lo); err != nil {
			return fmt.Errorf("fabric: lo up in %s: %w", h.Netns, err)
		}
	}
	return nil
}

// newNamed makes network namespace name (bound under /run/netns) without leaving the calling
// goroutine's thread in it.
func newNamed(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return netns.None(), err
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr == nil {
		runtime.UnlockOSThread() // a thread that could not go back dies with the goroutine
	} else if err == nil {
		ns.Close()
		return netns.None(), serr
	}
	return ns, err
}

// Remove deletes the hosts' namespaces (and with them their veths) and the bridge. What is
// gone already is no error.
func (f *Fabric) Remove() error {
	var errs []error
	for i, h := range f.Hosts {
		if _, err := os.Stat(filepath.Join("/run/netns", h.Netns)); err == nil {
			if err := netns.DeleteNamed(h.Netns); err != nil {
				errs = append(errs, fmt.Errorf("fabric: namespace %s: %w", h.Netns, err))
			}
		}
		if l, err := netlink.LinkByName(f.veth(i + 1)); err == nil {
			netlink.LinkDel(l)
		}
	}
	if br, err := netlink.LinkByName(f.Bridge); err == nil {
		if err := netlink.LinkDel(br); err != nil {
			errs = append(errs, fmt.Errorf("fabric: bridge %s: %w", f.Bridge, err))
		}
	}
	return errors.Join(errs...)
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}
}

// Enter runs this program again — same arguments, same environment, same process — inside
// network namespace name, unless it runs there already: `enjin ring1 --netns` on a simulated
// host. It returns only if it cannot (or need not) run it again.
func Enter(name string) error {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("fabric: namespace %s: %w", name, err)
	}
	defer ns.Close()
	runtime.LockOSThread() // the namespace is the thread's; exec keeps this thread's
	cur, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("fabric: this thread's namespace: %w", err)
	}
	defer cur.Close()
	if cur.Equal(ns) {
		runtime.UnlockOSThread()
		return nil
	}
	exe, err := os.Executable()
	if err == nil {
		err = netns.Set(ns)
	}
	if err == nil {
		err = syscall.Exec(exe, os.Args, os.Environ())
	}
	return fmt.Errorf("fabric: run again in %s: %w", name, err) // the thread stays locked: it may be in ns
}
