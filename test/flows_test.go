package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/test/harness"
)

// A ring 1 node's observation reaches ring 0's ingest user and OPS (under the mapped
// subject), verifies, and ring 0's acknowledgement comes back to the node.
func TestRing1ObservationReachesRing0AndOps(t *testing.T) {
	c := harness.StartBroker(t)
	r0 := c.Connect(t, c.Ring0Ingest(t))
	ops := c.Connect(t, c.Ops(t, "alice"))
	cr, att := c.Ring1Node(t, "n1")
	n1 := c.Connect(t, cr)

	r0msgs := make(chan *nats.Msg, 1)
	if _, err := r0.Subscribe(bus.Ring1ObsAll, func(m *nats.Msg) { r0msgs <- m; bus.Ack(m) }); err != nil {
		t.Fatal(err)
	}
	opsSub, err := ops.SubscribeSync(bus.OpsAll)
	if err != nil {
		t.Fatal(err)
	}
	flush(t, r0, ops)

	v := bus.NewVerifier(0)
	if err := v.Register("n1", att.Public(), 0); err != nil {
		t.Fatal(err)
	}
	s := bus.NewSigner("n1", att)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := bus.SendObservation(ctx, n1, s, bus.Ring1Obs("n1"), enjin.Observation{Node: "n1", Ring: enjin.Ring1, State: enjin.StateUp}); err != nil {
		t.Fatalf("observation not acknowledged by ring 0: %v", err)
	}
	m := <-r0msgs
	if m.Subject != bus.Ring1Obs("n1") {
		t.Fatalf("ring 0 subject %q, want %q", m.Subject, bus.Ring1Obs("n1"))
	}
	node, ok := bus.Ring1ObsNode(m.Subject)
	if !ok || node != "n1" {
		t.Fatalf("node from subject: %q %v", node, ok)
	}
	if _, err := v.Verify(node, m.Header, m.Data, time.Now()); err != nil {
		t.Fatalf("verify at ring 0: %v", err)
	}
	om, err := opsSub.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatalf("ops got nothing: %v", err)
	}
	if om.Subject != bus.OpsRing1Obs("n1") || om.Header.Get(bus.HdrSig) == "" {
		t.Fatalf("ops got %q with sig %q", om.Subject, om.Header.Get(bus.HdrSig))
	}
}

// A ring 0 command reaches exactly the addressed ring 1 node, and its reply comes back.
func TestRing0CommandReachesOnlyAddressedNode(t *testing.T) {
	c := harness.StartBroker(t)
	r0 := c.Connect(t, c.Ring0(t))
	got := map[enjin.NodeID]int{}
	var conns []*nats.Conn
	for _, n := range []enjin.NodeID{"n1", "n2", "n3"} {
		cr, _ := c.Ring1Node(t, n)
		nc := c.Connect(t, cr)
		conns = append(conns, nc)
		if _, err := bus.Handle(nc, bus.Ring1Cmds(n), "", func(m *nats.Msg, req map[string]string) (map[string]string, error) {
			got[n]++
			return map[string]string{"node": string(n), "verb": m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, conns...)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	resp, err := bus.Request[map[string]string, map[string]string](ctx, r0, bus.R0ToRing1Cmd("n2", bus.VerbPing), map[string]string{})
	if err != nil {
		t.Fatalf("ping n2: %v", err)
	}
	if resp["node"] != "n2" || resp["verb"] != bus.VerbPing {
		t.Fatalf("reply %v, want node n2 verb ping", resp)
	}
	flush(t, conns...)
	if got["n1"] != 0 || got["n2"] != 1 || got["n3"] != 0 {
		t.Fatalf("commands delivered %v, want only n2 once", got)
	}
}

// A ring 1 node's request to a ring 0 service reaches ring 0 with the caller attested by
// the server, and the reply comes back.
func TestRing1RequestReachesRing0Service(t *testing.T) {
	c := harness.StartBroker(t)
	r0 := c.Connect(t, c.Ring0(t))
	var caller string
	if _, err := bus.Handle(r0, bus.Ring0API(bus.ServiceRevoke), "ring0", func(m *nats.Msg, req map[string]string) (map[string]string, error) {
		caller = m.Header.Get("Nats-Request-Info")
		return map[string]string{"ok": req["user"]}, nil
	}); err != nil {
		t.Fatal(err)
	}
	flush(t, r0)
	cr, _ := c.Ring1Node(t, "n1")
	n1 := c.Connect(t, cr)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	resp, err := bus.Request[map[string]string, map[string]string](ctx, n1, bus.R1Ring0(bus.ServiceRevoke), map[string]string{"user": "U123"})
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if resp["ok"] != "U123" {
		t.Fatalf("reply %v", resp)
	}
	ring1, _ := c.Chain.Account(keys.RING1)
	if !strings.Contains(caller, ring1.Public) {
		t.Fatalf("Nats-Request-Info %q does not name RING1 %s", caller, ring1.Public)
	}
}

func flush(t testing.TB, ncs ...*nats.Conn) {
	t.Helper()
	for _, nc := range ncs {
		if err := nc.Flush(); err != nil {
			t.Fatalf("flush: %v", err)
		}
	}
}
