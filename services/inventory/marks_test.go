package inventory_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
	"enjin/services/inventory"
	"enjin/test/harness"
)

// A heartbeat that says what the last one said does not write its node's row (a new row
// version per heartbeat was a third of PostgreSQL's ingest work), yet every reader — the
// node, the list, the verifier's marks, the latest observations — sees it. The row is
// written when the node's state or claimed state changes, when its mark is a minute old,
// and at decommission; its mark stays a floor once the observations are gone.
func TestHeartbeatsSayingNothingNewLeaveTheNodeRow(t *testing.T) {
	ctx := t.Context()
	url := harness.StartPostgres(t).CreateDatabase(t, "")
	s, err := inventory.Open(ctx, url, harness.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	type row struct {
		xmin    string
		lastSeq int64
	}
	rowOf := func(id string) (r row) {
		t.Helper()
		if err := conn.QueryRow(ctx, `SELECT xmin::text, last_seq FROM nodes WHERE id = $1`, id).Scan(&r.xmin, &r.lastSeq); err != nil {
			t.Fatal(err)
		}
		return r
	}
	ingest := func(rs ...inventory.Record) {
		t.Helper()
		if err := s.Ingest(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	// seesLatest checks that every reader sees seq as n1's latest, received at at.
	seesLatest := func(seq uint64, at time.Time) {
		t.Helper()
		n, err := s.GetNode(ctx, "n1")
		if err != nil || n.LastSeq != seq || n.LastObsAt == nil || !n.LastObsAt.Equal(at.Truncate(time.Microsecond)) || n.State != "up" {
			t.Errorf("node: %+v (%v), want last seq %d at %v", n, err, seq, at)
		}
		ns, err := s.ListNodes(ctx, inventory.NodeFilter{})
		if err != nil || len(ns) != 2 || ns[0].ID != "n1" || ns[0].LastSeq != seq {
			t.Errorf("list: %+v (%v), want n1 at %d first", ns, err, seq)
		}
		ks, err := s.NodeKeys(ctx)
		if i := slices.IndexFunc(ks, func(k inventory.NodeKey) bool { return k.Node == "n1" }); err != nil || i < 0 || ks[i].LastSeq != seq {
			t.Errorf("node keys: %+v (%v), want n1 at %d", ks, err, seq)
		}
		if k, ok, err := s.NodeKeyOf(ctx, "n1"); err != nil || !ok || k.LastSeq != seq {
			t.Errorf("node key of n1: %+v %v (%v), want %d", k, ok, err, seq)
		}
		ls, err := s.LatestObservations(ctx)
		if i := slices.IndexFunc(ls, func(o enjin.SignedObservation) bool { return o.Node == "n1" }); err != nil || i < 0 || ls[i].Seq != seq {
			t.Errorf("latest observations: %+v (%v), want n1's %d", ls, err, seq)
		}
	}
	register(t, s, "n1", "")
	register(t, s, "n2", "")

	first := obs("n1", 1)
	ingest(first)
	written := rowOf("n1")
	if written.lastSeq != 1 {
		t.Fatalf("first heartbeat: row's mark %d, want 1", written.lastSeq)
	}
	seesLatest(1, first.ReceivedAt)

	var last inventory.Record
	for seq := uint64(2); seq <= 4; seq++ {
		last = obs("n1", seq)
		ingest(last)
	}
	if r := rowOf("n1"); r != written {
		t.Errorf("three heartbeats saying nothing new wrote the row: %+v, was %+v", r, written)
	}
	seesLatest(4, last.ReceivedAt)

	changed := obs("n1", 5)
	changed.State = "degraded"
	ingest(changed)
	if r := rowOf("n1"); r.xmin == written.xmin || r.lastSeq != 5 {
		t.Errorf("a changed claimed state did not write the row: %+v", r)
	}
	if n, _ := s.GetNode(ctx, "n1"); n.ObservedState != "degraded" {
		t.Errorf("claimed state %q, want degraded", n.ObservedState)
	}
	back := obs("n1", 6)
	ingest(back)
	written = rowOf("n1")

	late := obs("n1", 7)
	late.ReceivedAt = back.ReceivedAt.Add(time.Minute) // its mark is a minute old now
	ingest(late)
	if r := rowOf("n1"); r.xmin == written.xmin || r.lastSeq != 7 {
		t.Errorf("a minute-old mark was not written: %+v", r)
	}
	eight := obs("n1", 8)
	eight.Sig = []byte("sig-8")
	ingest(eight)
	seesLatest(8, eight.ReceivedAt)
	// The verifier's marks come with the stored signature there, so a copy of it sent again
	// after a restart is known for one.
	if k, _, err := s.NodeKeyOf(ctx, "n1"); err != nil || string(k.LastSig) != "sig-8" {
		t.Errorf("node key of n1: signature %q (%v), want sig-8", k.LastSig, err)
	}
	if r := rowOf("n1"); r.lastSeq != 7 {
		t.Errorf("row's mark %d, want 7", r.lastSeq)
	}

	// The observations gone (retention), the row's mark is the floor.
	if _, err := conn.Exec(ctx, `DELETE FROM node_observations WHERE node_id = 'n1'`); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.GetNode(ctx, "n1"); n.LastSeq != 7 || n.LastObsAt == nil || !n.LastObsAt.Equal(late.ReceivedAt.Truncate(time.Microsecond)) {
		t.Errorf("after retention: %+v, want the row's mark 7", n)
	}

	// Decommissioned, a node keeps the mark it had, in its row.
	for seq := uint64(1); seq <= 3; seq++ {
		ingest(obs("n2", seq))
	}
	n2, _ := s.GetNode(ctx, "n2")
	if _, err := s.Decommission(ctx, "n2", n2.Version); err != nil {
		t.Fatal(err)
	}
	if r := rowOf("n2"); r.lastSeq != 3 {
		t.Errorf("decommissioned n2's row mark %d, want 3", r.lastSeq)
	}
	ingest(obs("n2", 9))
	if n, _ := s.GetNode(ctx, "n2"); n.LastSeq != 3 || n.State != inventory.StateDecommissioned {
		t.Errorf("decommissioned n2 after an observation: %+v", n)
	}
}
