package test

import (
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/rings/ring1"
	"enjin/test/harness"
)

// TestRing1AsLeafnode: a ring 1 node of a "remote site" reaches the bus as a NATS leafnode of
// two ring 0 hubs (`enjin ring1 --leaf`), not as their client: its heartbeats are stored and
// it stays up; its only connection is to the first hub's leaf listener; when that hub dies it
// goes on through the second, and is never judged down. Through a leaf connection made with
// the node's credential, the hubs let in exactly what its RING1 user may publish — its own
// observation subject — and nothing else (another node's observations, ring 0's events,
// commands to other nodes); a tenant's credential cannot open a leaf connection at all.
// Decommissioned, the node is refused by the hubs and stops.
func TestRing1AsLeafnode(t *testing.T) {
	hb := time.Second
	leafs := []int{harness.FreePort(t), harness.FreePort(t)}
	members := newCluster(t, 2, hb, func(i int) []string {
		return []string{"--leaf-listen", "127.0.0.1:" + strconv.Itoa(leafs[i])}
	})
	hub := func(i int) string { return "nats://127.0.0.1:" + strconv.Itoa(leafs[i]) }
	id := enjin.NodeID("leaf-node")
	state := t.TempDir()
	node := harness.Start(t, "ring1", "--join-file", members[0].joinFile(id), "--ring0", members[0].api(),
		"--state-dir", state, "--heartbeat", hb.String(), "--log-level", "warn", "--leaf", hub(0)+","+hub(1))
	harness.Eventually(t, 30*time.Second, func() bool { s, seq := nodeVia(members, id); return s == "up" && seq > 0 }, "%s up through the leaf", id)

	// Its one connection is to the first hub's leaf listener: no client connection to a broker.
	pid := strconv.Itoa(node.Cmd.Process.Pid)
	conns := func() string {
		out, _ := exec.Command("ss", "-Htnp", "state", "established").Output()
		var mine []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "pid="+pid+",") {
				mine = append(mine, l)
			}
		}
		return strings.Join(mine, "\n")
	}
	harness.Eventually(t, 10*time.Second, func() bool {
		c := conns()
		return strings.Contains(c, "127.0.0.1:"+strconv.Itoa(leafs[0])) && !strings.Contains(c, ":"+strconv.Itoa(members[0].natsPort)) &&
			!strings.Contains(c, ":"+strconv.Itoa(members[1].natsPort))
	}, "the node connected to hub a's leaf listener only:\n%s", conns())

	// Hub a dies: the node goes on through hub b.
	members[0].proc.Kill()
	_, before := nodeVia(members[1:], id)
	harness.Eventually(t, 20*time.Second, func() bool { _, seq := nodeVia(members[1:], id); return seq > before+2 }, "%s heartbeating through hub b", id)
	if !strings.Contains(conns(), "127.0.0.1:"+strconv.Itoa(leafs[1])) {
		t.Fatalf("the node is not on hub b's leaf listener:\n%s", conns())
	}
	if s := stateVia(members[1:], id); s != "up" {
		t.Fatalf("%s is %s after its hub died", id, s)
	}

	// What a leaf with the node's credential may send in: an operator watching every node's
	// observations (ops.ring1.*.obs) sees the node's own subject and nothing else it tries.
	var ops struct {
		Creds string `json:"creds"`
	}
	if code := members[1].call("POST", "/v1/creds/ops", map[string]any{"name": "leaf-watch"}, &ops); code != 200 {
		t.Fatalf("ops creds: %d", code)
	}
	oc, err := keys.ParseCreds([]byte(ops.Creds))
	if err != nil {
		t.Fatal(err)
	}
	watch, err := bus.Connect(members[1].nats(), oc)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	seen := make(chan *nats.Msg, 256)
	if _, err := watch.ChanSubscribe("ops.>", seen); err != nil {
		t.Fatal(err)
	}
	watch.Flush()
	leaf := leafServer(t, hub(1), filepath.Join(state, "ring1", ring1.CredsFile))
	lc, err := nats.Connect("", nats.InProcessServer(leaf))
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	tries := []string{"ring1.other-node.obs", "events.leaf-forged", "ring0.seen", "r0.to.ring1.other-node.cmd.stop", "ring1." + string(id) + ".obs"}
	harness.Eventually(t, 10*time.Second, func() bool {
		for _, s := range tries {
			lc.Publish(s, []byte("from the leaf"))
		}
		lc.Flush()
		for {
			select {
			case m := <-seen:
				if strings.Contains(string(m.Data), "from the leaf") {
					if m.Subject != "ops.ring1."+string(id)+".obs" {
						t.Fatalf("ALLOW-LIST BROKEN: a leaf with %s's credential got %s through", id, m.Subject)
					}
					return true
				}
			case <-time.After(200 * time.Millisecond):
				return false
			}
		}
	}, "the node's own subject through the leaf")
	// A moment more for anything forbidden to show up.
	deadline := time.After(time.Second)
	for done := false; !done; {
		select {
		case m := <-seen:
			if strings.Contains(string(m.Data), "from the leaf") && m.Subject != "ops.ring1."+string(id)+".obs" {
				t.Fatalf("ALLOW-LIST BROKEN: a leaf with %s's credential got %s through", id, m.Subject)
			}
		case <-deadline:
			done = true
		}
	}
	// Decommissioned, the node's leaf is refused by the hubs, and the node stops: a credential
	// that can no longer work is no reason to keep trying.
	var n struct {
		Version int64 `json:"version"`
	}
	if code := members[1].call("GET", "/v1/nodes/"+string(id), nil, &n); code != 200 {
		t.Fatalf("GET node: %d", code)
	}
	if status, body, _ := members[1].do("DELETE", "/v1/nodes/"+string(id), "Bearer "+members[1].token, "If-Match", `"`+strconv.FormatInt(n.Version, 10)+`"`); status != 200 {
		t.Fatalf("decommission: %d %v", status, body)
	}
	start := time.Now()
	if code := node.Wait(t, 60*time.Second); code == 0 || !strings.Contains(node.Out.String(), "credential no longer accepted") {
		t.Fatalf("the decommissioned leaf node exited %d:\n%s", code, node.Out)
	}
	t.Logf("the decommissioned leaf node stopped %v after the decommission", time.Since(start).Round(time.Millisecond))
}

// startLeaf runs a NATS server for the test that tries to connect as a leafnode to hub with
// the credential in file creds.
func startLeaf(t *testing.T, hub, creds string) *server.Server {
	t.Helper()
	u, _ := url.Parse(hub)
	s, err := server.NewServer(&server.Options{DontListen: true, NoSigs: true, NoLog: true,
		LeafNode: server.LeafNodeOpts{ReconnectInterval: 100 * time.Millisecond, Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{u}, Credentials: creds}}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("leaf server not ready")
	}
	return s
}

// leafServer is startLeaf, connected.
func leafServer(t *testing.T, hub, creds string) *server.Server {
	t.Helper()
	s := startLeaf(t, hub, creds)
	if !harness.Poll(10*time.Second, func() bool { return s.NumLeafNodes() == 1 }) {
		t.Fatalf("no leaf connection to %s with %s", hub, creds)
	}
	return s
}

// Only ring 1 nodes' users connect as leafnodes: a tenant's user (minted with its scoped
// key, as a hosting node mints one for each instance) is a client and nothing else — its
// leaf connection is refused — and so is an operator's; a ring 1 node's user gets in.
func TestOnlyRing1UsersConnectAsLeafnodes(t *testing.T) {
	c := harness.StartBrokerWith(t, t.TempDir(), "127.0.0.1:-1")
	hub := c.Broker.LeafURL()
	if hub == "" {
		t.Fatal("no leaf URL")
	}
	iss, _ := c.Tenant(t, "acme")
	tenant, err := iss.Mint(keys.UserRequest{Name: "instance-1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.Connect(t, tenant) // as a client: fine
	node, _ := c.Ring1Node(t, "ring1-x")
	dir := t.TempDir()
	file := func(name string, cr *keys.Creds) string {
		b, err := cr.File()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name+".creds")
		if err := keys.WriteCreds(p, b); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leafServer(t, hub, file("node", node)) // connects, or fails the test
	for name, cr := range map[string]*keys.Creds{"tenant": tenant, "ops": c.Ops(t, "watcher")} {
		s := startLeaf(t, hub, file(name, cr))
		if harness.Poll(2*time.Second, func() bool { return s.NumLeafNodes() > 0 }) {
			t.Fatalf("LEAF LET IN: a %s's user connected as a leafnode", name)
		}
		s.Shutdown()
	}
}
