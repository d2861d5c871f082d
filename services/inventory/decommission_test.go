package inventory_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"enjin"
	"enjin/services/inventory"
)

// TestDecommission checks what decommissioning a node refuses and what it changes: nothing
// brings the node back to life — no join token, no observation, no liveness verdict, no
// tenant — but ring 0 registering it again to run it itself.
func TestDecommission(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	register(t, s, "n1", "")
	register(t, s, "n2", "")
	if _, err := s.RegisterNode(ctx, inventory.Node{ID: "r0", Ring: enjin.Ring0, Supervision: "process", Observation: "self"}); err != nil {
		t.Fatal(err)
	}
	n1, _ := s.GetNode(ctx, "n1")
	early, err := s.CreateJoinToken(ctx, "n1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTenant(ctx, inventory.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTenantHost(ctx, "acme", "n1", "AKEY"); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name    string
		id      enjin.NodeID
		version int64
		want    error
	}{
		{"unknown node", "ghost", 1, inventory.ErrNotFound},
		{"stale version", "n1", n1.Version + 1, inventory.ErrConflict},
		{"ring 0 node", "r0", 1, inventory.ErrInvalid},
		{"hosting a tenant", "n1", n1.Version, inventory.ErrInUse},
	} {
		if _, err := s.Decommission(ctx, tt.id, tt.version); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v want %v", tt.name, err, tt.want)
		}
	}
	if n, _ := s.GetNode(ctx, "n1"); n.State == inventory.StateDecommissioned || n.Version != n1.Version {
		t.Fatalf("a refused decommission changed the node: %+v", n)
	}
	tn, _ := s.GetTenant(ctx, "acme")
	if err := s.DeleteTenant(ctx, "acme", tn.Version); err != nil {
		t.Fatal(err)
	}

	n, err := s.Decommission(ctx, "n1", n1.Version)
	if err != nil || n.State != inventory.StateDecommissioned || n.DesiredState != inventory.StateDecommissioned || n.Version != n1.Version+1 {
		t.Fatalf("decommission: %v %+v", err, n)
	}
	if again, err := s.Decommission(ctx, "n1", n.Version); err != nil || again.Version != n.Version {
		t.Fatalf("decommission again: %v, version %d want %d unchanged", err, again.Version, n.Version)
	}
	if h, _ := s.History(ctx, "node", "n1"); len(h) < 2 {
		t.Errorf("history has %d versions", len(h))
	}

	late, err := s.CreateJoinToken(ctx, "n1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"issued before": early, "issued after": late} {
		if _, err := s.RedeemJoinToken(ctx, tok, "UNEW", "ANEW"); !errors.Is(err, inventory.ErrNotFound) {
			t.Errorf("join token %s: got %v want ErrNotFound", name, err)
		}
	}
	if _, err := s.CreateTenant(ctx, inventory.Tenant{ID: "acme3"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTenantHost(ctx, "acme3", "n1", "AKEY"); !errors.Is(err, inventory.ErrInvalid) {
		t.Errorf("a decommissioned node took a tenant: %v", err)
	}
	epoch := lead(t, s, "m1").Epoch
	if changed, err := s.SetStates(ctx, epoch, []enjin.NodeID{"n1", "n2"}, "down"); err != nil || changed != 1 {
		t.Errorf("liveness: %d changed (%v), want only n2", changed, err)
	}
	if err := s.Ingest(ctx, []inventory.Record{obs("n1", 100)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.GetNode(ctx, "n1"); n.State != inventory.StateDecommissioned || n.LastSeq == 100 {
		t.Errorf("an observation moved a decommissioned node: %+v", n)
	}
	keys, err := s.NodeKeys(ctx)
	if err != nil || slices.ContainsFunc(keys, func(k inventory.NodeKey) bool { return k.Node == "n1" }) {
		t.Errorf("node keys %+v (%v): want no n1", keys, err)
	}
	if _, err := s.SetStates(ctx, epoch, []enjin.NodeID{"n2"}, "sleepy"); !errors.Is(err, inventory.ErrInvalid) {
		t.Errorf("state sleepy: got %v; the constraint is gone", err)
	}

	// Ring 0 running the node itself registers it again: it comes back.
	register(t, s, "n1", "")
	if n, _ := s.GetNode(ctx, "n1"); n.State != "unknown" || n.DesiredState != "up" {
		t.Errorf("registered again: %+v", n)
	}
}

func TestLiveCredentialKeys(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	now := time.Now()
	for i, c := range []inventory.Credential{
		{JTI: "a1", Account: "RING1", Subject: "UA", Node: "n1"},
		{JTI: "a2", Account: "RING1", Subject: "UA", Node: "n1"}, // a renewal, same key
		{JTI: "b1", Account: "RING1", Subject: "UB", Node: "n1"},
		{JTI: "c1", Account: "RING1", Subject: "UC", Node: "n1"}, // revoked below
		{JTI: "d1", Account: "RING1", Subject: "UD", Node: "n2"},
		{JTI: "e1", Account: "OPS", Subject: "UE", Node: "n1"},
	} {
		c.IssuedAt, c.ExpiresAt = now.Add(time.Duration(i)*time.Second), now.Add(time.Hour)
		if err := s.RecordCredential(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RevokeCredentials(ctx, "UC"); err != nil {
		t.Fatal(err)
	}
	got, err := s.LiveCredentialKeys(ctx, "n1", "RING1")
	if err != nil || !slices.Equal(got, []string{"UA", "UB"}) {
		t.Fatalf("got %q (%v) want [UA UB]", got, err)
	}
}
