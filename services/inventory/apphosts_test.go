package inventory_test

import (
	"errors"
	"sync"
	"testing"

	"enjin"
	"enjin/services/inventory"
)

// An app is placed once, on one of its tenant's hosts: the first placement stands however
// many race; a node that does not host the tenant is refused; a destroyed app's placement
// goes, and so do all of a tenant's with it.
func TestAppPlacement(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	for _, n := range []enjin.NodeID{"n1", "n2", "n3"} {
		register(t, s, n, "")
	}
	if _, err := s.CreateTenant(ctx, inventory.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []enjin.NodeID{"n1", "n2"} {
		if err := s.AddTenantHost(ctx, "acme", n, "KEY-"+string(n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AppHost(ctx, "acme", "web"); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("an app never placed: %v", err)
	}
	if _, err := s.PlaceApp(ctx, "acme", "web", "n3", nil); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("placed on a node not hosting the tenant: %v", err)
	}

	// 20 deploys race to place one app, half on each host: all get the same answer.
	got := make([]enjin.NodeID, 20)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			node := enjin.NodeID("n1")
			if i%2 == 1 {
				node = "n2"
			}
			p, err := s.PlaceApp(ctx, "acme", "web", node, []byte(`{"node":"`+string(node)+`"}`))
			if err != nil {
				t.Error(err)
			}
			got[i] = p
		})
	}
	wg.Wait()
	first, err := s.AppHost(ctx, "acme", "web")
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range got {
		if p != first {
			t.Fatalf("placement %d answered %q; the app is on %q", i, p, first)
		}
	}
	if _, err := s.PlaceApp(ctx, "acme", "api", "n2", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	// The winning bid is kept with the placement that stood, exactly; one that is not JSON
	// is shown as a string, never dropped.
	ps, err := s.Placements(ctx)
	if err != nil || len(ps) != 2 || ps[0].App != "api" || string(ps[0].Bid) != `"not json"` ||
		ps[1].App != "web" || string(ps[1].Bid) != `{"node":"`+string(first)+`"}` {
		t.Fatalf("placements: %+v %v", ps, err)
	}
	counts, err := s.AppsPlaced(ctx, "acme")
	if err != nil || len(counts) > 2 || counts["n1"]+counts["n2"] != 2 || counts["n2"] < 1 {
		t.Fatalf("apps placed: %v %v", counts, err)
	}
	t.Logf("20 racing placements: all on %s; placed per node %v", first, counts)

	if err := s.ForgetApp(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppHost(ctx, "acme", "web"); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("a forgotten app: %v", err)
	}
	tn, _ := s.GetTenant(ctx, "acme")
	if err := s.DeleteTenant(ctx, "acme", tn.Version); err != nil {
		t.Fatal(err)
	}
	if counts, err := s.AppsPlaced(ctx, "acme"); err != nil || len(counts) != 0 {
		t.Fatalf("placements outlive their tenant: %v %v", counts, err)
	}
}
