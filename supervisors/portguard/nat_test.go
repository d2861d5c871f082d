package portguard_test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"enjin"
	"enjin/supervisors/portguard"
	"enjin/test/harness"
)

// A host (a namespace) is the NAT gateway of two networks, each a bridge with the gateway
// address, and has an uplink to an "outside" namespace and a second, non-NAT link to a "lan"
// namespace. What the guard lets through and what it does not:
//   - a port with rule sets reaches outside only where an "out" rule accepts, a port without
//     them anywhere outside, both masqueraded to the uplink's address;
//   - neither reaches a protected address, the host's own services, the other NAT network
//     or the lan, whatever they send;
//   - the outside opens nothing inwards: not a port, not the other network, and not the lan
//     through the host, whose uplink now forwards (the replies need it).
func TestNATGateway(t *testing.T) {
	host := fmt.Sprintf("enjpg-nh-%d", id)
	out := fmt.Sprintf("enjpg-no-%d", id)
	lan := fmt.Sprintf("enjpg-nl-%d", id)
	for _, ns := range []string{host, out, lan} {
		harness.Netns(t, ns, false)
	}
	gw0, gw1 := net.HardwareAddr{0x02, 0x65, 0x6e, 0, 0, 7}, net.HardwareAddr{0x02, 0x65, 0x6e, 0, 0, 8}
	for _, br := range []struct {
		name, addr string
		mac        net.HardwareAddr
	}{{"br0", "100.77.0.1/24", gw0}, {"br1", "100.78.0.1/24", gw1}} {
		harness.Run(t, "ip", "-n", host, "link", "add", br.name, "address", br.mac.String(), "type", "bridge", "mcast_snooping", "0")
		harness.Run(t, "ip", "-n", host, "addr", "add", br.addr, "dev", br.name)
		harness.Run(t, "ip", "-n", host, "link", "set", br.name, "up")
	}
	link := func(hostIf, ns, hostAddr, nsAddr string) {
		harness.Run(t, "ip", "-n", host, "link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns)
		harness.Run(t, "ip", "-n", host, "addr", "add", hostAddr, "dev", hostIf)
		harness.Run(t, "ip", "-n", ns, "addr", "add", nsAddr, "dev", "eth0")
		harness.Run(t, "ip", "-n", host, "link", "set", hostIf, "up")
		harness.Run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	}
	link("up0", out, "198.18.7.1/24", "198.18.7.2/24")
	harness.Run(t, "ip", "-n", out, "addr", "add", "198.18.7.3/24", "dev", "eth0")
	link("lan0", lan, "198.18.9.1/24", "198.18.9.2/24")
	// The lan's link forwards of its own accord, as a container bridge's might: only the
	// guard stands between it and the uplink that the gateway makes forward.
	harness.Run(t, "ip", "netns", "exec", host, "sysctl", "-q", "-w", "net.ipv4.conf.lan0.forwarding=1")
	// The outside and the lan try to reach through the host.
	harness.Run(t, "ip", "-n", out, "route", "add", "100.64.0.0/10", "via", "198.18.7.1")
	harness.Run(t, "ip", "-n", out, "route", "add", "198.18.9.0/24", "via", "198.18.7.1")
	harness.Run(t, "ip", "-n", lan, "route", "add", "default", "via", "198.18.9.1")
	for _, a := range []string{"198.18.7.2:7001", "198.18.7.2:7002", "198.18.7.3:7001"} {
		harness.ServeRemote(t, out, a)
	}
	harness.ServeRemote(t, lan, "198.18.9.2:7001")
	harness.ServeRemote(t, host, "0.0.0.0:7009")

	g := portguard.New(fmt.Sprintf("enjin-ports-n%d", id), host)
	g.NAT = portguard.NAT{Uplinks: []string{"up0"}, Protected: []netip.Prefix{netip.MustParsePrefix("198.18.7.3/32")}}
	t.Cleanup(func() { g.Close() })
	if err := g.EnableFiltering(); err != nil {
		t.Fatal(err)
	}
	ruled := portguard.Port{Link: "etrul", MAC: macAttacker, Addresses: []netip.Addr{ipAttacker}, Bridge: "br0", Gateway: gw0,
		Filter: &enjin.Filter{Rules: []enjin.Rule{{Direction: "out", Protocol: "tcp", Ports: "7001", Remote: "198.18.7.2/32", Action: "accept"}}}}
	open := portguard.Port{Link: "etopn", MAC: macVictim, Addresses: []netip.Addr{ipVictim}, Bridge: "br0", Gateway: gw0}
	other := portguard.Port{Link: "etoth", MAC: macOther, Addresses: []netip.Addr{netip.MustParseAddr("100.78.0.2")}, Bridge: "br1", Gateway: gw1}
	rul := endpoint(t, host, "rul", ruled, "100.77.0.2/24")
	opn := endpoint(t, host, "opn", open, "100.77.0.3/24")
	oth := fmt.Sprintf("enjpg-oth-%d", id)
	harness.Netns(t, oth, false)
	harness.Run(t, "ip", "-n", host, "link", "add", other.Link, "type", "veth", "peer", "name", "eth0", "netns", oth)
	harness.Run(t, "ip", "-n", oth, "link", "set", "eth0", "address", other.MAC.String())
	harness.Run(t, "ip", "-n", host, "link", "set", other.Link, "master", "br1", "up")
	harness.Run(t, "ip", "-n", oth, "addr", "add", "100.78.0.2/24", "dev", "eth0")
	harness.Run(t, "ip", "-n", oth, "link", "set", "eth0", "up")
	for _, ns := range []string{rul, opn} {
		harness.Run(t, "ip", "-n", ns, "route", "add", "default", "via", "100.77.0.1")
	}
	harness.Run(t, "ip", "-n", oth, "route", "add", "default", "via", "100.78.0.1")
	harness.ServeRemote(t, opn, "100.77.0.3:7001")
	harness.ServeRemote(t, oth, "100.78.0.2:7001")

	reach := func(from, to string) string { got, _ := askQuick(t, from, to); return got }
	// Unguarded, the host forwards nothing: the gateway's reach is the guard's doing.
	if got := reach(opn, "198.18.7.2:7001"); got != "" {
		t.Fatalf("before the guard, a port reached the outside: %q", got)
	}
	for _, p := range []portguard.Port{ruled, open, other} {
		if err := g.Set(p); err != nil {
			t.Fatal(err)
		}
	}
	const masqueraded = "198.18.7.1"
	for _, c := range []struct {
		what, from, to string
		want           bool
	}{
		{"ruled port, to what its out rule accepts", rul, "198.18.7.2:7001", true},
		{"ruled port, to a port its rules do not name", rul, "198.18.7.2:7002", false},
		{"ruled port, to an address its rules do not name", rul, "198.18.7.3:7001", false},
		{"open port, outside", opn, "198.18.7.2:7002", true},
		{"open port, a protected address", opn, "198.18.7.3:7001", false},
		{"open port, the host's own service on the gateway", opn, "100.77.0.1:7009", false},
		{"open port, the host's own service on the uplink", opn, "198.18.7.1:7009", false},
		{"open port, the other NAT network", opn, "100.78.0.2:7001", false},
		{"open port, the lan", opn, "198.18.9.2:7001", false},
		{"other network's port, outside", oth, "198.18.7.2:7001", true},
		{"other network's port, this network", oth, "100.77.0.3:7001", false},
		{"outside, a port", out, "100.77.0.3:7001", false},
		{"outside, the other network", out, "100.78.0.2:7001", false},
		{"outside, the lan through the host", out, "198.18.9.2:7001", false},
		{"lan, the outside through the host", lan, "198.18.7.2:7001", false},
		{"lan, a port", lan, "100.77.0.3:7001", false},
	} {
		got := reach(c.from, c.to)
		switch {
		case c.want && got != masqueraded:
			t.Errorf("%s (%s): answered %q, want it reached from %s", c.what, c.to, got, masqueraded)
		case !c.want && got != "":
			t.Errorf("WALL BROKEN: %s (%s): reached, seen as %q", c.what, c.to, got)
		}
	}
	if t.Failed() {
		t.Log(harness.Run(t, "ip", "netns", "exec", host, "nft", "list", "ruleset"))
	}
	// Replies only: the outside's answers come back, its own connections do not.
	if rules := harness.Run(t, "ip", "netns", "exec", host, "nft", "list", "chain", "inet", g.Table, "gw_back"); !strings.Contains(rules, "established") {
		t.Fatalf("no replies' rule:\n%s", rules)
	}
	// A change of a port's rules changes where it may go, at once.
	ruled.Filter = &enjin.Filter{Rules: []enjin.Rule{{Direction: "out", Protocol: "tcp", Ports: "7002", Action: "accept"}}}
	if err := g.Set(ruled); err != nil {
		t.Fatal(err)
	}
	if got := reach(rul, "198.18.7.2:7002"); got != masqueraded {
		t.Errorf("ruled port, after its rules allow 7002: answered %q", got)
	}
	if got := reach(rul, "198.18.7.2:7001"); got != "" {
		t.Errorf("WALL BROKEN: ruled port, after its rules no longer allow 7001: reached, seen as %q", got)
	}
	// The last gateway gone, the uplink forwards still (the setting stays): the guard still
	// keeps it from carrying anything through the host.
	for _, p := range []portguard.Port{ruled, open, other} {
		if err := g.Remove(p.Link); err != nil {
			t.Fatal(err)
		}
	}
	if got := harness.Run(t, "ip", "netns", "exec", host, "sysctl", "-n", "net.ipv4.conf.up0.forwarding"); strings.TrimSpace(got) != "1" {
		t.Fatalf("up0 forwarding %q: the check below would prove nothing", got)
	}
	for _, c := range [][2]string{{out, "198.18.9.2:7001"}, {lan, "198.18.7.2:7001"}} {
		if got := reach(c[0], c[1]); got != "" {
			t.Errorf("WALL BROKEN: with no gateway left, %s reached %s through the host, seen as %q", c[0], c[1], got)
		}
	}
}
