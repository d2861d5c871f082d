package netseg_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"enjin/supervisors/netseg"
	"enjin/test/harness"
)

var id = os.Getpid() % 100000

// namespace makes a network namespace for the test, with lo up and IPv6 off, and a netlink
// handle into it.
func namespace(t *testing.T, role string) (string, *netlink.Handle) {
	t.Helper()
	name := fmt.Sprintf("enjseg-%s-%d", role, id)
	return name, harness.Netns(t, name, false)
}

// endpoint puts a namespace with address addr behind host's network vni, as an app instance
// or a VM would be, and returns the namespace's name.
func endpoint(t *testing.T, host string, seg *netseg.Host, vni int, role, addr string) string {
	t.Helper()
	ep, _ := namespace(t, role)
	outer := fmt.Sprintf("e%s%d", role, id)
	run(t, "ip", "-n", host, "link", "add", outer, "mtu", "1450", "type", "veth", "peer", "name", "eth0", "netns", ep, "mtu", "1450")
	if err := seg.Attach(vni, outer); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "-n", host, "link", "set", outer, "up")
	run(t, "ip", "-n", ep, "addr", "add", addr, "dev", "eth0")
	run(t, "ip", "-n", ep, "link", "set", "eth0", "up")
	return ep
}

var (
	run   = harness.Run
	serve = harness.ServeName
	ask   = harness.AskName
)

// rxPackets is how many packets eth0 in ns has received.
func rxPackets(t *testing.T, ns string) int64 {
	t.Helper()
	var links []struct {
		Stats struct {
			RX struct {
				Packets int64 `json:"packets"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(run(t, "ip", "-n", ns, "-s", "-j", "link", "show", "eth0")), &links); err != nil || len(links) != 1 {
		t.Fatalf("stats of eth0 in %s: %v", ns, err)
	}
	return links[0].Stats.RX.Packets
}

// Two hosts, each in its own namespace with an underlay veth between them; two tenants'
// networks on both, with the same addresses. Endpoints of one network reach each other across
// the hosts over VXLAN, none of their frames reaches the other network, a host without the
// other as a peer floods nothing to it, and removing a segment leaves nothing.
func TestSegmentsAcrossHosts(t *testing.T) {
	a, ha := namespace(t, "a")
	b, hb := namespace(t, "b")
	ua, ub := fmt.Sprintf("ua%d", id), fmt.Sprintf("ub%d", id)
	run(t, "ip", "-n", a, "link", "add", ua, "type", "veth", "peer", "name", ub, "netns", b)
	under := fmt.Sprintf("198.18.%d", id%250)
	run(t, "ip", "-n", a, "addr", "add", under+".1/24", "dev", ua)
	run(t, "ip", "-n", b, "addr", "add", under+".2/24", "dev", ub)
	run(t, "ip", "-n", a, "link", "set", ua, "up")
	run(t, "ip", "-n", b, "link", "set", ub, "up")
	addrA, addrB := netip.MustParseAddr(under+".1"), netip.MustParseAddr(under+".2")

	sa, sb := netseg.New(ha, "cloud-1 host-a"), netseg.New(hb, "cloud-1 host-b")
	for _, vni := range []int{5000, 5001} {
		for range 2 { // twice: Ensure changes nothing the second time
			if err := sa.Ensure(netseg.Segment{VNI: vni, Underlay: addrA, Peers: []netip.Addr{addrB}}); err != nil {
				t.Fatal(err)
			}
			if err := sb.Ensure(netseg.Segment{VNI: vni, Underlay: addrB, Peers: []netip.Addr{addrA}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Another cloud on host A numbers a network alike: it gets no part of this one's
	// segment — neither to join nor to remove.
	other := netseg.New(ha, "cloud-2 host-a")
	if err := other.Ensure(netseg.Segment{VNI: 5000, Underlay: addrA}); err == nil || !strings.Contains(err.Error(), "another cloud") {
		t.Fatalf("another owner's Ensure of vni 5000: %v", err)
	}
	if err := other.Remove(5000); err != nil {
		t.Fatal(err)
	}
	if out := run(t, "ip", "-n", a, "-o", "link", "show", netseg.VXLAN(5000)); !strings.Contains(out, "alias cloud-1 host-a") {
		t.Fatalf("another owner's Remove took the segment, or it has no owner:\n%s", out)
	}

	// acme's network (5000) and beta's (5001), the same addresses on both.
	acmeA := endpoint(t, a, sa, 5000, "aa", "100.77.0.2/24")
	acmeB := endpoint(t, b, sb, 5000, "ab", "100.77.0.3/24")
	betaA := endpoint(t, a, sa, 5001, "ba", "100.77.0.2/24")
	betaB := endpoint(t, b, sb, 5001, "bb", "100.77.0.3/24")

	for _, ep := range []struct{ ns, addr string }{{acmeB, "100.77.0.3:7000"}, {betaB, "100.77.0.3:7000"}, {acmeA, "100.77.0.2:7000"}} {
		serve(t, ep.ns, ep.addr)
	}
	for _, tc := range []struct{ from, to, want string }{{acmeA, "100.77.0.3:7000", acmeB}, {betaA, "100.77.0.3:7000", betaB}, {acmeB, "100.77.0.2:7000", acmeA}} {
		if got, err := ask(t, tc.from, tc.to); got != tc.want {
			t.Fatalf("from %s to %s: reached %q (%v), want %s", tc.from, tc.to, got, err, tc.want)
		}
	}
	before := rxPackets(t, betaB)
	const n = 50
	for range n {
		if got, err := ask(t, acmeA, "100.77.0.3:7000"); got != acmeB {
			t.Fatalf("acme's endpoints stopped reaching each other: %q %v", got, err)
		}
	}
	if got := rxPackets(t, betaB) - before; got != 0 {
		t.Fatalf("beta's endpoint at the same address received %d frames while acme's talked", got)
	}
	t.Logf("%d connections across hosts on acme's network; beta's endpoint at the same address received 0 frames", n)

	// Without B as a peer, A sends B nothing: the flooding entry is the only way there.
	if err := sa.Ensure(netseg.Segment{VNI: 5000, Underlay: addrA}); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "-n", acmeA, "neigh", "flush", "all")
	if got, err := ask(t, acmeA, "100.77.0.3:7000"); err == nil {
		t.Fatalf("host A reached B's endpoint (%q) with B removed from its peers", got)
	}
	if err := sa.Ensure(netseg.Segment{VNI: 5000, Underlay: addrA, Peers: []netip.Addr{addrB}}); err != nil {
		t.Fatal(err)
	}
	// The endpoint's neighbour entry failed while B was away: the first tries may wait for it.
	var got string
	var err error
	if !harness.Poll(10*time.Second, func() bool { got, err = ask(t, acmeA, "100.77.0.3:7000"); return got == acmeB }) {
		t.Fatalf("B added back as a peer: %q %v", got, err)
	}

	if err := sa.Ensure(netseg.Segment{VNI: 5000, Underlay: addrA, Peers: []netip.Addr{addrA}}); err == nil {
		t.Fatal("a host as its own peer was accepted")
	}
	// A segment a port holds outlives Remove; dropping the last hold lets it go.
	if err := sa.Hold("port-1", netseg.Segment{VNI: 5000, Underlay: addrA, Peers: []netip.Addr{addrB}}); err != nil {
		t.Fatal(err)
	}
	sa.Hold("port-2", netseg.Segment{VNI: 5000, Underlay: addrA, Peers: []netip.Addr{addrB}})
	if err := sa.Remove(5000); err != nil {
		t.Fatal(err)
	}
	if out := run(t, "ip", "-n", a, "-o", "link", "show", netseg.Bridge(5000)); !strings.Contains(out, netseg.Bridge(5000)) {
		t.Fatalf("a held segment was removed:\n%s", out)
	}
	if sa.Drop("port-1", 5000) != true || sa.Drop("port-2", 5000) != false {
		t.Fatal("Drop did not count the holds")
	}
	// A NAT network's segment makes the bridge its gateway: the gateway's MAC and address.
	gw := netseg.Segment{VNI: 5002, Underlay: addrA, Gateway: netip.MustParsePrefix("100.79.0.1/24")}
	for range 2 {
		if err := sa.Ensure(gw); err != nil {
			t.Fatal(err)
		}
	}
	if out := run(t, "ip", "-n", a, "-o", "addr", "show", "dev", netseg.Bridge(5002)); !strings.Contains(out, "100.79.0.1/24") {
		t.Fatalf("gateway's bridge has no gateway address:\n%s", out)
	}
	if out := run(t, "ip", "-n", a, "-o", "link", "show", netseg.Bridge(5002)); !strings.Contains(out, netseg.GatewayMAC(5002).String()) {
		t.Fatalf("gateway's bridge has not the gateway's MAC %s:\n%s", netseg.GatewayMAC(5002), out)
	}
	// A sweep takes what nothing holds or wants (5002, left by an earlier run), and leaves
	// what is held (5001) or wanted (5000).
	if err := sa.Ensure(netseg.Segment{VNI: 5002, Underlay: addrA}); err != nil {
		t.Fatal(err)
	}
	sa.Hold("port-3", netseg.Segment{VNI: 5001, Underlay: addrA, Peers: []netip.Addr{addrB}})
	if n, err := sa.Sweep(func(vni int) bool { return vni == 5000 }); err != nil || n != 1 {
		t.Fatalf("sweep removed %d (%v), want 1", n, err)
	}
	if out := run(t, "ip", "-n", a, "-o", "link", "show"); strings.Contains(out, "enjn5002") || !strings.Contains(out, "enjn5001") ||
		!strings.Contains(out, "enjn5000") {
		t.Fatalf("after the sweep:\n%s", out)
	}
	sa.Drop("port-3", 5001)
	for _, vni := range []int{5000, 5001} {
		if err := sa.Remove(vni); err != nil {
			t.Fatal(err)
		}
		if err := sa.Remove(vni); err != nil {
			t.Fatalf("removing twice: %v", err)
		}
	}
	if out := run(t, "ip", "-n", a, "-o", "link", "show"); strings.Contains(out, "enjn") || strings.Contains(out, "enjx") {
		t.Fatalf("left on host A after Remove:\n%s", out)
	}
}
