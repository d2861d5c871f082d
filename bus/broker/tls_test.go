package broker_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin/bus"
	"enjin/bus/broker"
	"enjin/keys"
	"enjin/test/harness"
)

// inNetnsEnv, set, is the address a test re-run inside a network namespace listens on.
const inNetnsEnv = "ENJIN_TEST_NETNS_ADDR"

// TestTLSOnRoutesAndLeafnodes runs two ring 0 members and a leafnode listener on an address
// beyond loopback, in a network namespace of the test's (the test binary runs itself again
// there): every listener asks for TLS (a plain client is told so and gets nothing), the
// members' routes come up over TLS from the chain's CA, a client trusting the CA reaches the
// bus through either member, and one trusting another CA is refused.
func TestTLSOnRoutesAndLeafnodes(t *testing.T) {
	addr := os.Getenv(inNetnsEnv)
	if addr == "" {
		n := harness.Unique(200) + 20
		ns := fmt.Sprintf("enjbtls%d", n)
		addr = fmt.Sprintf("100.64.%d.1", n)
		harness.Netns(t, ns, false)
		harness.Run(t, "ip", "-n", ns, "link", "add", "t0", "type", "veth", "peer", "name", "t1")
		harness.Run(t, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", "t0")
		harness.Run(t, "ip", "-n", ns, "link", "set", "t0", "up")
		harness.Run(t, "ip", "-n", ns, "link", "set", "t1", "up")
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run", "^TestTLSOnRoutesAndLeafnodes$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), inNetnsEnv+"="+addr)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestTLSOnRoutesAndLeafnodes") {
			t.Fatalf("in namespace %s: %v\n%s", ns, err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "tls_test.go") {
				t.Log(strings.TrimSpace(l))
			}
		}
		return
	}
	dirs := []string{t.TempDir(), t.TempDir()}
	if _, err := keys.Init(dirs[0]); err != nil {
		t.Fatal(err)
	}
	harness.CopyKeys(t, dirs[0], dirs[1])
	ports := []int{harness.FreePort(t), harness.FreePort(t)}
	var members []*broker.Broker
	for i, name := range []string{"r0-a", "r0-b"} {
		cfg := broker.Config{StateDir: dirs[i], Host: addr, Port: -1, Logger: harness.Logger(t),
			Cluster: &broker.Cluster{Member: name, Host: addr, Port: ports[i], Routes: []string{fmt.Sprintf("%s:%d", addr, ports[1-i])}}}
		if i == 0 {
			cfg.Leaf = addr + ":-1"
		}
		b, err := broker.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		members = append(members, b)
	}
	a := members[0]
	if !strings.HasPrefix(a.ClientURL(), "tls://") || !strings.HasPrefix(a.LeafURL(), "tls://") {
		t.Fatalf("client %s, leaf %s: want tls://", a.ClientURL(), a.LeafURL())
	}
	// What a plain client is told on each port.
	for what, hp := range map[string]string{"client": strings.TrimPrefix(a.ClientURL(), "tls://"),
		"route": a.ClusterAddr(), "leafnode": strings.TrimPrefix(a.LeafURL(), "tls://")} {
		c, err := net.DialTimeout("tcp", hp, 2*time.Second)
		if err != nil {
			t.Fatalf("%s port %s: %v", what, hp, err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		info, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		// Routes start with the TLS handshake, saying nothing in plain; the others say
		// TLS is required.
		if plain := info != "" && !strings.Contains(info, `"tls_required":true`); plain || (what != "route" && info == "") {
			t.Errorf("%s port %s says %q, want TLS required", what, hp, info)
		}
	}
	harness.Eventually(t, 15*time.Second, func() bool {
		return slices.Equal(a.Peers(), []string{"r0-b"}) && slices.Equal(members[1].Peers(), []string{"r0-a"})
	}, "the members route to each other over TLS")

	cloud := &harness.Cloud{Dir: dirs[0], Broker: a, Chain: a.Chain(), URL: a.ClientURL()}
	ca, _ := a.Chain().CA()
	trust, err := bus.TrustCA(ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	cr, _ := cloud.Ring1Node(t, "n1")
	sub := cloud.Connect(t, cloud.Ring0Ingest(t), trust)
	got := make(chan *nats.Msg, 1)
	if _, err := sub.Subscribe(bus.Ring1ObsAll, func(m *nats.Msg) { got <- m }); err != nil {
		t.Fatal(err)
	}
	sub.Flush()
	node, err := bus.Connect(members[1].ClientURL(), cr, trust) // through b, routed to a
	if err != nil {
		t.Fatalf("a node trusting the CA, through b: %v", err)
	}
	defer node.Close()
	harness.Eventually(t, 10*time.Second, func() bool {
		node.Publish(bus.Ring1Obs("n1"), []byte("x"))
		select {
		case <-got:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	}, "an observation crosses the TLS route")
	other, _ := keys.Init(t.TempDir())
	otherCA, _ := other.CA()
	distrust, _ := bus.TrustCA(otherCA.PEM)
	if nc, err := bus.Connect(a.ClientURL(), cr, distrust, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client trusting another CA got in")
	}
	t.Logf("client, route and leafnode ports on %s ask for TLS; members routed over TLS; another CA refused", addr)
}
