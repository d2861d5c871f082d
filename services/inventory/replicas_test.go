package inventory_test

import (
	"errors"
	"slices"
	"testing"

	"enjin"
	"enjin/services/inventory"
)

// An app's replicas are added and dropped under the leader's epoch, never on the app's home
// nor for an app not placed; they are listed as placements with their bids; a replica the
// app moves to is its home, a replica no more; and they go with the app.
func TestReplicas(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	nodes := []enjin.NodeID{"n1", "n2", "n3"}
	for _, n := range nodes {
		register(t, s, n, "")
	}
	if _, err := s.CreateTenant(ctx, inventory.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := s.AddTenantHost(ctx, "acme", n, "KEY-"+string(n)); err != nil {
			t.Fatal(err)
		}
	}
	l := lead(t, s, "a")
	k := inventory.AppKey{Tenant: "acme", App: "web"}
	if err := s.AddReplica(ctx, l.Epoch, "acme", "web", "n2", nil); !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("a replica of an app not placed: %v, want conflict", err)
	}
	if _, err := s.PlaceApp(ctx, "acme", "web", "n1", []byte(`{"home":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddReplica(ctx, l.Epoch, "acme", "web", "n1", nil); !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("a replica on the app's home: %v, want conflict", err)
	}
	if err := s.AddReplica(ctx, l.Epoch+1, "acme", "web", "n2", nil); !errors.Is(err, inventory.ErrFenced) {
		t.Fatalf("a replica under another epoch: %v, want fenced", err)
	}
	for _, n := range []enjin.NodeID{"n3", "n2"} {
		if err := s.AddReplica(ctx, l.Epoch, "acme", "web", n, []byte(`{"bid":"`+string(n)+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.Replicas(ctx)
	if err != nil || !slices.Equal(rs[k], []enjin.NodeID{"n2", "n3"}) {
		t.Fatalf("replicas: %v %v", rs, err)
	}
	ps, err := s.Placements(ctx)
	if err != nil || len(ps) != 3 || ps[0].Node != "n1" || ps[0].Replica || !ps[1].Replica || ps[1].Node != "n2" ||
		string(ps[2].Bid) != `{"bid":"n3"}` {
		t.Fatalf("placements: %+v %v", ps, err)
	}
	if err := s.DropReplica(ctx, l.Epoch+1, "acme", "web", "n3"); !errors.Is(err, inventory.ErrFenced) {
		t.Fatalf("a drop under another epoch: %v, want fenced", err)
	}
	if err := s.DropReplica(ctx, l.Epoch, "acme", "web", "n3"); err != nil {
		t.Fatal(err)
	}
	if err := s.MoveApp(ctx, l.Epoch, "acme", "web", "n1", "n2", []byte(`{"bid":2}`)); err != nil {
		t.Fatal(err)
	}
	if rs, _ := s.Replicas(ctx); len(rs) != 0 {
		t.Fatalf("the replica moved to is still one: %v", rs)
	}
	if err := s.AddReplica(ctx, l.Epoch, "acme", "web", "n3", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgetApp(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	if rs, _ := s.Replicas(ctx); len(rs) != 0 {
		t.Fatalf("replicas outlived their app: %v", rs)
	}
}
