package inventory_test

import (
	"errors"
	"testing"

	"enjin"
	"enjin/services/inventory"
)

// A placed app's recipe is kept with its package, replaced whole or — same package — only in
// its head; an app not placed keeps none, and its recipe goes with its placement. A move is
// made under the leader's epoch: a deposed leader's is refused, and so is one of an app that
// is not where the mover thought; the move is pending until settled on the new host.
func TestRecipesAndMoves(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	for _, n := range []enjin.NodeID{"n1", "n2"} {
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
	rec := inventory.AppRecipe{Tenant: "acme", App: "web", Node: "n1", Release: 1, Digest: "sha256-a",
		Scale: map[string]int{"web": 2}, Sealed: []byte("sealed-1"), Package: []byte("package-a")}
	if err := s.PutRecipe(ctx, rec); !errors.Is(err, inventory.ErrNotFound) && err != nil {
		t.Fatalf("a recipe of an app never placed: %v", err)
	}
	if _, err := s.Recipe(ctx, "acme", "web"); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("an app never placed has a recipe: %v", err)
	}
	if _, err := s.PlaceApp(ctx, "acme", "web", "n1", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecipe(ctx, rec); err != nil {
		t.Fatal(err)
	}
	head := rec
	head.Release, head.Sealed, head.Package, head.Scale = 2, []byte("sealed-2"), nil, map[string]int{"web": 3}
	if err := s.PutRecipe(ctx, head); err != nil {
		t.Fatal(err)
	}
	got, err := s.Recipe(ctx, "acme", "web")
	if err != nil || got.Release != 2 || string(got.Sealed) != "sealed-2" || string(got.Package) != "package-a" || got.Scale["web"] != 3 {
		t.Fatalf("recipe after a head change: %+v %v", got, err)
	}
	heads, err := s.RecipeHeads(ctx)
	if h := heads[inventory.AppKey{Tenant: "acme", App: "web"}]; err != nil || len(heads) != 1 || h.Release != 2 || h.Package != nil || h.Sealed != nil {
		t.Fatalf("heads: %+v %v", heads, err)
	}

	l := lead(t, s, "a")
	if err := s.MoveApp(ctx, l.Epoch+1, "acme", "web", "n1", "n2", []byte("{}")); !errors.Is(err, inventory.ErrFenced) {
		t.Fatalf("a move under another epoch: %v, want fenced", err)
	}
	if err := s.MoveApp(ctx, l.Epoch, "acme", "web", "n2", "n1", []byte("{}")); !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("a move of an app from where it is not: %v, want conflict", err)
	}
	if err := s.MoveApp(ctx, l.Epoch, "acme", "web", "n1", "n2", []byte(`{"bid":2}`)); err != nil {
		t.Fatal(err)
	}
	ps, err := s.PlacedApps(ctx)
	if err != nil || len(ps) != 1 || ps[0].Node != "n2" || ps[0].MovedFrom != "n1" {
		t.Fatalf("placed after the move: %+v %v", ps, err)
	}
	if err := s.SettleMove(ctx, "acme", "web", "n2"); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.PlacedApps(ctx); len(ps) != 1 || ps[0].MovedFrom != "" {
		t.Fatalf("placed after settling: %+v", ps)
	}
	if err := s.ForgetApp(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	if heads, err := s.RecipeHeads(ctx); err != nil || len(heads) != 0 {
		t.Fatalf("a destroyed app's recipe stayed: %+v %v", heads, err)
	}
}
