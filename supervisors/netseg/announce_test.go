package netseg_test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"enjin/supervisors/netseg"
	"enjin/test/harness"
)

// An address that moves to another port is announced: a neighbour that knew the old port's
// MAC there knows the new one's at once, for IPv4 and IPv6.
func TestAnnounceMovesAnAddress(t *testing.T) {
	host := fmt.Sprintf("enjan-h-%d", id)
	harness.Netns(t, host, false)
	run(t, "ip", "-n", host, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	run(t, "ip", "-n", host, "link", "set", "br0", "up")
	port := func(role, mac string, addrs ...string) string {
		ns := fmt.Sprintf("enjan-%s-%d", role, id)
		harness.Netns(t, ns, true)
		run(t, "ip", "-n", host, "link", "add", "v"+role, "type", "veth", "peer", "name", "eth1", "netns", ns)
		run(t, "ip", "-n", host, "link", "set", "v"+role, "master", "br0", "up")
		run(t, "ip", "-n", ns, "link", "set", "eth1", "address", mac)
		for _, a := range addrs {
			run(t, "ip", "-n", ns, "addr", "add", a, "dev", "eth1", "nodad")
		}
		run(t, "ip", "-n", ns, "link", "set", "eth1", "up")
		return ns
	}
	watcher := port("w", "52:54:00:aa:00:01", "100.77.0.2/24", "fd00:77::2/64")
	// What the watcher knew of the address's old port.
	run(t, "ip", "-n", watcher, "neigh", "replace", "100.77.0.4", "lladdr", "52:54:00:aa:00:09", "dev", "eth1", "nud", "reachable")
	run(t, "ip", "-n", watcher, "neigh", "replace", "fd00:77::4", "lladdr", "52:54:00:aa:00:09", "dev", "eth1", "nud", "reachable")
	mover := port("m", "52:54:00:aa:00:04", "100.77.0.4/24", "fd00:77::4/64")
	hw, _ := net.ParseMAC("52:54:00:aa:00:04")
	var out string
	ok := harness.Poll(5*time.Second, func() bool {
		if err := netseg.Announce(mover, "eth1", hw, []netip.Addr{netip.MustParseAddr("100.77.0.4"), netip.MustParseAddr("fd00:77::4")}); err != nil {
			t.Fatal(err)
		}
		out = run(t, "ip", "-n", watcher, "neigh", "show", "dev", "eth1")
		return strings.Count(out, "lladdr 52:54:00:aa:00:04") == 2
	})
	if !ok {
		t.Fatalf("the watcher still has the old port's MAC:\n%s", out)
	}
}
