package portguard_test

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"enjin"
	"enjin/supervisors/portguard"
	"enjin/test/harness"
)

// A port with rule sets: what they accept in reaches it and nothing else does, replies to
// what it opens come back, what they drop out does not leave, a cap on new connections holds
// within 20 %, and a hundred changes of its rules under traffic never let a denied
// connection through or fail an allowed one.
func TestRuleSets(t *testing.T) {
	host := fmt.Sprintf("enjpg-fh-%d", id)
	harness.Netns(t, host, false)
	harness.Run(t, "ip", "-n", host, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	harness.Run(t, "ip", "-n", host, "link", "set", "br0", "up")
	g := portguard.New(fmt.Sprintf("enjin-ports-f%d", id), host)
	t.Cleanup(func() { g.Close() })
	if err := g.EnableFiltering(); err != nil {
		t.Fatal(err)
	}
	client := portguard.Port{Link: "etcli", MAC: macAttacker, Addresses: []netip.Addr{ipAttacker}, Bridge: "br0"}
	server := portguard.Port{Link: "etsrv", MAC: macVictim, Addresses: []netip.Addr{ipVictim}, Bridge: "br0"}
	cli := endpoint(t, host, "cli", client, "100.77.0.2/24")
	srv := endpoint(t, host, "srv", server, "100.77.0.3/24")
	for _, p := range []string{"7001", "7002", "7003", "7005"} {
		harness.ServeName(t, srv, "100.77.0.3:"+p)
	}
	for _, p := range []string{"7010", "7011"} {
		harness.ServeName(t, cli, "100.77.0.2:"+p)
	}
	reach := func(from, to string) bool { got, _ := askQuick(t, from, to); return got != "" }
	// (The first connections wait on ARP, which a loaded machine may take a while to answer.)
	if !harness.Poll(5*time.Second, func() bool { return reach(cli, "100.77.0.3:7002") && reach(srv, "100.77.0.2:7010") }) {
		t.Fatal("without rule sets, the ports do not reach each other")
	}

	rules := func(extra ...enjin.Rule) *enjin.Filter {
		return &enjin.Filter{Rules: append([]enjin.Rule{
			{Direction: "in", Protocol: "tcp", Ports: "7001", Action: "accept"},
			{Direction: "in", Protocol: "tcp", Ports: "7003", Remote: "100.77.0.0/24", Action: "accept", Rate: 50},
			{Direction: "out", Protocol: "tcp", Ports: "7010", Action: "drop"},
		}, extra...)}
	}
	server.Filter = rules()
	if err := g.Set(client); err != nil {
		t.Fatal(err)
	}
	if err := g.Set(server); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from, to string
		want     bool
	}{{cli, "100.77.0.3:7001", true}, {cli, "100.77.0.3:7002", false}, {cli, "100.77.0.3:7005", false},
		{srv, "100.77.0.2:7010", false}, {srv, "100.77.0.2:7011", true}} {
		if got := reach(c.from, c.to); got != c.want {
			t.Fatalf("%s → %s: reached %t, want %t", c.from, c.to, got, c.want)
		}
	}

	// A rule naming its remotes as a set (a remote rule set's members): in the set, let in;
	// out of it, not.
	for _, c := range []struct {
		members []string
		want    bool
	}{{[]string{"100.77.0.9/32", "100.77.0.2/32"}, true}, {[]string{"100.77.0.9/32"}, false}} {
		server.Filter = rules(enjin.Rule{Direction: "in", Protocol: "tcp", Ports: "7005", Remotes: c.members, Action: "accept"})
		if err := g.Set(server); err != nil {
			t.Fatal(err)
		}
		if got := reach(cli, "100.77.0.3:7005"); got != c.want {
			t.Fatalf("remotes %v: reached %t, want %t", c.members, got, c.want)
		}
	}
	server.Filter = rules()
	if err := g.Set(server); err != nil {
		t.Fatal(err)
	}

	// The cap: 50 new connections a second from one address, and a burst of 5.
	n, d := hammer(t, cli, "100.77.0.3:7003", 2*time.Second)
	want := 50*d.Seconds() + 5
	t.Logf("rate cap 50/s: %d connections in %v (%.1f/s), expected %.0f", n, d.Round(time.Millisecond), float64(n)/d.Seconds(), want)
	if float64(n) < 0.8*want || float64(n) > 1.2*want {
		t.Fatalf("rate cap: %d connections, want %.0f ± 20 %%", n, want)
	}

	// A hundred changes under traffic: 7001 always allowed, 7002 always denied.
	var allowedOK, allowedFail, deniedOK, deniedFail atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range []struct {
		addr      string
		ok, notOK *atomic.Int64
	}{{"100.77.0.3:7001", &allowedOK, &allowedFail}, {"100.77.0.3:7002", &deniedOK, &deniedFail}} {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if reach(cli, p.addr) {
					p.ok.Add(1)
				} else {
					p.notOK.Add(1)
				}
			}
		})
	}
	for i := range 100 {
		server.Filter = rules()
		if i%2 == 0 {
			server.Filter = rules(enjin.Rule{Direction: "in", Protocol: "tcp", Ports: "7005", Action: "accept"})
		}
		if err := g.Set(server); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("100 rule changes under traffic: allowed flow %d passed, %d failed; denied flow %d passed, %d refused",
		allowedOK.Load(), allowedFail.Load(), deniedOK.Load(), deniedFail.Load())
	if allowedFail.Load() != 0 || deniedOK.Load() != 0 || allowedOK.Load() == 0 || deniedFail.Load() == 0 {
		t.Fatal("a rule change opened a window or closed an allowed flow")
	}

	// Rules a port is given are checked again here.
	for _, bad := range []enjin.Rule{{Direction: "sideways", Protocol: "tcp", Action: "accept"},
		{Direction: "in", Protocol: "tcp", Ports: "0-99999", Action: "accept"},
		{Direction: "in", Protocol: "tcp", Remote: "100.77.0.1/24", Action: "accept"},
		{Direction: "in", Protocol: "tcp", RemoteNetwork: "lan", Action: "accept"}} {
		server.Filter = &enjin.Filter{Rules: []enjin.Rule{bad}}
		if err := g.Set(server); err == nil {
			t.Errorf("rule %+v accepted", bad)
		}
	}
}

// askQuick is AskName with a short patience: a dropped SYN is an answer too.
func askQuick(t *testing.T, ns, addr string) (string, error) {
	t.Helper()
	var c net.Conn
	var err error
	harness.InNetns(t, ns, func() { c, err = net.DialTimeout("tcp", addr, 150*time.Millisecond) })
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	b := make([]byte, 64)
	n, _ := c.Read(b)
	return string(b[:n]), nil
}

// hammer opens connections to addr from ns as fast as 8 dialers can for about d, and
// returns how many were made and how long it took.
func hammer(t *testing.T, ns, addr string, d time.Duration) (int, time.Duration) {
	var made atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Since(start) < d {
				var c net.Conn
				var err error
				harness.InNetns(t, ns, func() { c, err = net.DialTimeout("tcp", addr, 100*time.Millisecond) })
				if err == nil {
					made.Add(1)
					c.Close()
				}
			}
		})
	}
	wg.Wait()
	return int(made.Load()), time.Since(start)
}
