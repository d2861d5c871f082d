package broker_test

import (
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin/bus"
	"enjin/bus/broker"
	"enjin/keys"
	"enjin/test/harness"
)

// startMember starts a clustered broker on dir with routes to the others, keeping its
// accounts in share if set.
func startMember(t *testing.T, dir, member string, port int, routes []string, share broker.Share) *harness.Cloud {
	t.Helper()
	b, err := broker.New(broker.Config{StateDir: dir, Port: -1, Logger: harness.Logger(t),
		Cluster: &broker.Cluster{Member: member, Port: port, Routes: routes}, Share: share})
	if err != nil {
		t.Fatalf("start %s: %v", member, err)
	}
	t.Cleanup(func() { b.Close() })
	return &harness.Cloud{Dir: dir, Broker: b, Chain: b.Chain(), URL: b.ClientURL()}
}

// Three ring 0 members holding one trust chain form one bus: each routes to the other two, a
// user minted by one connects to another, ring 0's ingest queue group spans members, and a
// tenant added on one member is known to all. A server with a chain of its own cannot join.
func TestRing0MembersFormOneBus(t *testing.T) {
	names := []string{"r0-a", "r0-b", "r0-c"}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	if _, err := keys.Init(dirs[0]); err != nil {
		t.Fatal(err)
	}
	harness.CopyKeys(t, dirs[0], dirs[1])
	harness.CopyKeys(t, dirs[0], dirs[2])
	ports := []int{harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)}
	var members []*harness.Cloud
	for i := range names {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, "127.0.0.1:"+itoa(p))
			}
		}
		members = append(members, startMember(t, dirs[i], names[i], ports[i], routes, nil))
	}
	harness.Eventually(t, 10*time.Second, func() bool {
		for i, m := range members {
			want := slices.Delete(slices.Clone(names), i, i+1)
			if !slices.Equal(m.Broker.Peers(), want) {
				return false
			}
		}
		return true
	}, "every member routes to the other two")
	harness.Eventually(t, 10*time.Second, func() bool {
		urls := members[0].Broker.ClientURLs()
		return len(urls) == 3 && urls[0] == members[0].URL && slices.Contains(urls, members[1].URL) && slices.Contains(urls, members[2].URL)
	}, "a knows every member's client URL, its own first: %v", members[0].Broker.ClientURLs())

	// Ring 0's ingest users on a and b share observations a node sends through c.
	var onA, onB atomic.Int64
	for i, n := range []*atomic.Int64{&onA, &onB} {
		nc := members[i].Connect(t, members[i].Ring0Ingest(t))
		if _, err := nc.QueueSubscribe(bus.Ring1ObsAll, "ring0", func(*nats.Msg) { n.Add(1) }); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	cr, _ := members[1].Ring1Node(t, "n1") // minted by b, connects to c
	node := members[2].Connect(t, cr)
	harness.Eventually(t, 10*time.Second, func() bool { // until c knows of both subscriptions
		return members[2].Broker.Server().NumSubscriptions() > 0 && probe(node)
	}, "c knows the queue subscribers")
	onA.Store(0)
	onB.Store(0)
	for range 300 {
		if err := node.Publish(bus.Ring1Obs("n1"), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	harness.Eventually(t, 10*time.Second, func() bool { return onA.Load()+onB.Load() == 300 }, "300 observations delivered once each")
	if onA.Load() == 0 || onB.Load() == 0 {
		t.Fatalf("the queue group did not span members: a took %d, b %d", onA.Load(), onB.Load())
	}
	t.Logf("300 observations through c: a took %d, b took %d", onA.Load(), onB.Load())

	// A tenant added on a: its users connect to b.
	acme, _ := members[0].Tenant(t, "acme")
	web, err := acme.Mint(keys.UserRequest{Name: "web-1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, func() bool {
		nc, err := bus.Connect(members[1].URL, web)
		if err == nil {
			nc.Close()
		}
		return err == nil
	}, "a tenant added on a connects to b")

	// A stranger — a server with its own chain — cannot route in.
	strangerDir := t.TempDir()
	stranger := startMember(t, strangerDir, "r0-x", harness.FreePort(t), []string{"127.0.0.1:" + itoa(ports[0])}, nil)
	var leaked atomic.Int64
	snc := stranger.Connect(t, stranger.Ring0Ingest(t))
	if _, err := snc.Subscribe(bus.Ring1ObsAll, func(*nats.Msg) { leaked.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := snc.Flush(); err != nil {
		t.Fatal(err)
	}
	onA.Store(0)
	onB.Store(0)
	deadline := time.Now().Add(3 * time.Second) // the stranger retries its route meanwhile
	for time.Now().Before(deadline) {
		for _, m := range members {
			if slices.Contains(m.Broker.Peers(), "r0-x") {
				t.Fatal("a member took a route from a server with its own chain")
			}
		}
		if err := node.Publish(bus.Ring1Obs("n1"), []byte("{}")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	harness.Eventually(t, 10*time.Second, func() bool { return onA.Load()+onB.Load() >= 50 }, "the members' observations")
	if n := leaked.Load(); n != 0 {
		t.Fatalf("%d observations reached the stranger", n)
	}
}

// probe reports whether a publish from nc reaches an ingest subscriber: a request with no
// responder times out rather than failing at once once the interest is known.
func probe(nc *nats.Conn) bool {
	_, err := nc.Request(bus.Ring1Obs("n1"), []byte("{}"), 50*time.Millisecond)
	return err != nats.ErrNoResponders
}

func itoa(n int) string { return strconv.Itoa(n) }
