package harness

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"testing"

	"enjin/supervisors/netseg"
)

// Fabric is an underlay for hosts simulated on this machine: a bridge in the root network
// namespace holding Gateway, and for each host a network namespace of its own, joined to the
// bridge by a veth whose inside end, eth0, holds the host's address — all in one /24 of
// 198.19.0.0/16 (in 198.18.0.0/15, never routed off the machine).
type Fabric struct {
	Bridge  string
	Gateway netip.Addr // the root namespace's address on the bridge
	Hosts   []FabricHost
}

// FabricHost is one simulated host: its network namespace and its address on the fabric.
type FabricHost struct {
	Netns string
	Addr  netip.Addr
}

// NewFabric makes a fabric with n hosts for the test; all of it goes when the test ends.
func NewFabric(t testing.TB, n int) *Fabric {
	t.Helper()
	k := FreePort(t)%250 + 1
	f := &Fabric{Bridge: fmt.Sprintf("enjf%d", k), Gateway: netip.AddrFrom4([4]byte{198, 19, byte(k), 1})}
	Run(t, "ip", "link", "add", f.Bridge, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", f.Bridge).Run() })
	Run(t, "ip", "addr", "add", f.Gateway.String()+"/24", "dev", f.Bridge)
	Run(t, "ip", "link", "set", f.Bridge, "up")
	for i := 1; i <= n; i++ {
		h := FabricHost{Netns: fmt.Sprintf("enjin-h%d-%d", k, i), Addr: netip.AddrFrom4([4]byte{198, 19, byte(k), byte(i + 1)})}
		Netns(t, h.Netns, true)
		veth := fmt.Sprintf("enjfv%d-%d", k, i)
		Run(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", h.Netns)
		t.Cleanup(func() { exec.Command("ip", "link", "del", veth).Run() })
		Run(t, "ip", "link", "set", veth, "master", f.Bridge, "up")
		Run(t, "ip", "-n", h.Netns, "addr", "add", h.Addr.String()+"/24", "dev", "eth0")
		Run(t, "ip", "-n", h.Netns, "link", "set", "eth0", "up")
		f.Hosts = append(f.Hosts, h)
	}
	return f
}

// Dialer dials from inside network namespace ns (for an http.Transport's Dial), on any
// goroutine.
func Dialer(ns string) func(network, addr string) (net.Conn, error) {
	return func(network, addr string) (c net.Conn, err error) {
		if nerr := netseg.InNamespace(ns, func() error { c, err = net.Dial(network, addr); return nil }); nerr != nil {
			return nil, nerr
		}
		return c, err
	}
}
