package inventory_test

import (
	"errors"
	"testing"
	"time"

	"enjin"
	"enjin/services/inventory"
)

// lead makes member ring 0's leader on s (no one else may lead) and returns its lease.
func lead(t *testing.T, s *inventory.Store, member string) *inventory.Lease {
	t.Helper()
	l, err := s.TryLead(t.Context(), member)
	if err != nil || l == nil {
		t.Fatalf("lead as %s: %v %v", member, l, err)
	}
	t.Cleanup(l.Close)
	return l
}

// One member leads at a time; when the leader's session ends (its process died, or the
// database lost sight of it) the standby waiting on the lock takes over with a newer epoch, the deposed leader's
// Hold reports the loss, and a verdict it still tries is refused — the nodes keep the state
// the new leader gave them.
func TestLeaseFencesTheDeposedLeader(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	for _, id := range []enjin.NodeID{"n1", "n2"} {
		register(t, s, id, "")
		if err := s.Ingest(ctx, []inventory.Record{obs(id, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	a := lead(t, s, "a")
	if n, err := s.SetStates(ctx, a.Epoch, []enjin.NodeID{"n1"}, "suspect"); err != nil || n != 1 {
		t.Fatalf("the leader's verdict: %d %v", n, err)
	}
	if got, err := s.Leader(ctx); err != nil || got.Epoch != a.Epoch || got.Member != "a" {
		t.Fatalf("recorded leader %+v %v; want a at epoch %d", got, err, a.Epoch)
	}

	held := make(chan error, 1)
	go func() { held <- a.Hold(ctx, 20*time.Millisecond, time.Second) }()
	standby := make(chan *inventory.Lease, 1)
	go func() { // waits on the lock while a holds it
		l, err := s.Lead(ctx, "b")
		if err != nil {
			t.Error(err)
		}
		standby <- l
	}()
	if c, err := s.TryLead(ctx, "c"); c != nil || err != nil || len(standby) > 0 {
		t.Fatalf("another leader while a leads: %+v %v, standby returned %v", c, err, len(standby) > 0)
	}
	if err := s.EndLeaderSessions(ctx, "a"); err != nil { // as PostgreSQL does when a's member vanishes
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case err := <-held:
		if err == nil {
			t.Fatal("Hold returned nil after the session ended")
		}
		t.Logf("the deposed leader noticed in %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		t.Fatal("the deposed leader's Hold did not return")
	}
	var b *inventory.Lease
	select {
	case b = <-standby:
		if b == nil {
			t.Fatal("the standby did not take over")
		}
		t.Cleanup(b.Close)
	case <-time.After(5 * time.Second):
		t.Fatal("the standby waiting on the lock did not take over")
	}
	if b.Epoch != a.Epoch+1 {
		t.Fatalf("new epoch %d, want %d", b.Epoch, a.Epoch+1)
	}
	if _, err := s.SetStates(ctx, b.Epoch, []enjin.NodeID{"n2"}, "suspect"); err != nil {
		t.Fatal(err)
	}
	// The deposed leader's late verdict: refused, nothing changed.
	n, err := s.SetStates(ctx, a.Epoch, []enjin.NodeID{"n1", "n2"}, "down")
	if !errors.Is(err, inventory.ErrFenced) || n != 0 {
		t.Fatalf("deposed leader's write: %d changed, %v; want ErrFenced", n, err)
	}
	t.Logf("refused: %v", err)
	for _, id := range []enjin.NodeID{"n1", "n2"} {
		if node, err := s.GetNode(ctx, id); err != nil || node.State != "suspect" {
			t.Fatalf("%s: %+v %v; want suspect", id, node, err)
		}
	}

	// A promotion is singleton work too: the deposed leader's is refused, the leader's done.
	tier, err := s.CreateTier(ctx, inventory.Tier{Ring: enjin.Ring1, Label: "db", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	for id, role := range map[enjin.NodeID]string{"n1": "primary", "n2": "replica"} {
		if _, err := s.SetMember(ctx, tier.ID, id, role); err != nil {
			t.Fatal(err)
		}
	}
	if ps, err := s.PrimaryTiers(ctx, []enjin.NodeID{"n1", "n2"}); err != nil || len(ps) != 1 || len(ps["n1"]) != 1 || ps["n1"][0] != tier.ID {
		t.Fatalf("primary tiers: %v %v", ps, err)
	}
	if _, err := s.PromoteFenced(ctx, a.Epoch, tier.ID, "n1"); !errors.Is(err, inventory.ErrFenced) {
		t.Fatalf("deposed leader's promotion: %v; want ErrFenced", err)
	}
	if p, err := s.PromoteFenced(ctx, b.Epoch, tier.ID, "n1"); err != nil || p.Primary != "n2" {
		t.Fatalf("the leader's promotion: %+v %v", p, err)
	}
}
