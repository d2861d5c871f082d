package inventory_test

import (
	"errors"
	"sync"
	"testing"

	"enjin"
	"enjin/services/inventory"
)

func TestConcurrentPromotionsLeaveOnePrimary(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	comp := map[string]string{}
	for _, c := range []string{"a", "b", "c"} {
		cc, err := s.CreateCompartment(ctx, inventory.Compartment{Type: "rack", Label: c})
		if err != nil {
			t.Fatal(err)
		}
		comp[c] = cc.ID
	}
	nodes := map[enjin.NodeID]string{"p": "a", "r1": "a", "r2": "b", "s1": "b", "s2": "c", "s3": "a"}
	for id, c := range nodes {
		register(t, s, id, comp[c])
		if err := s.Ingest(ctx, []inventory.Record{obs(id, 1)}); err != nil { // makes it up
			t.Fatal(err)
		}
	}
	tier, err := s.CreateTier(ctx, inventory.Tier{Ring: enjin.Ring1, Label: "db", Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	for id, role := range map[enjin.NodeID]string{"p": "primary", "r1": "replica", "r2": "replica"} {
		if _, err := s.SetMember(ctx, tier.ID, id, role); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetMember(ctx, tier.ID, "s1", "primary"); !errors.Is(err, inventory.ErrExists) {
		t.Fatalf("second primary: %v", err)
	}

	const racers = 12
	var wg sync.WaitGroup
	results := make(chan error, racers)
	var won inventory.Promotion
	var mu sync.Mutex
	for range racers {
		wg.Go(func() {
			p, err := s.Promote(ctx, tier.ID, "p")
			if err == nil {
				mu.Lock()
				won = p
				mu.Unlock()
			}
			results <- err
		})
	}
	wg.Wait()
	close(results)
	ok, conflicts := 0, 0
	for err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, inventory.ErrConflict):
			conflicts++
		default:
			t.Fatalf("promotion failed: %v", err)
		}
	}
	t.Logf("%d racers: %d promoted, %d answered conflict; primary %s, new replica %s, epoch %d",
		racers, ok, conflicts, won.Primary, won.NewReplica, won.Epoch)
	if ok != 1 || conflicts != racers-1 {
		t.Fatalf("%d promotions succeeded, want exactly 1", ok)
	}
	got, _ := s.GetTier(ctx, tier.ID)
	primaries, byComp := 0, map[string]int{}
	for _, m := range got.Members {
		if m.Role == "primary" {
			primaries++
			if m.Node != "r1" {
				t.Errorf("primary %s, want r1 (the replica in the failed primary's compartment)", m.Node)
			}
		} else {
			byComp[m.Compartment]++
		}
		if m.Epoch != won.Epoch {
			t.Errorf("%s at epoch %d, want %d", m.Node, m.Epoch, won.Epoch)
		}
		if m.Node == "p" {
			t.Error("failed primary still in the tier")
		}
	}
	if primaries != 1 {
		t.Fatalf("%d primaries", primaries)
	}
	if won.NewReplica != "s2" || len(byComp) != 2 || byComp[comp["b"]] != 1 || byComp[comp["c"]] != 1 {
		t.Fatalf("replicas %v (new %s): want one in b and the new one in c", byComp, won.NewReplica)
	}
	// A second promotion names the new primary and moves on again, preferring its compartment
	// (a) — none left there, so an up replica elsewhere.
	p2, err := s.Promote(ctx, tier.ID, "r1")
	if err != nil || (p2.Primary != "r2" && p2.Primary != "s2") || p2.Epoch != won.Epoch+1 {
		t.Fatalf("second promotion: %v %+v", err, p2)
	}
}
