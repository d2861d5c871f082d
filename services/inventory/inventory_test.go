package inventory_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"enjin"
	"enjin/services/inventory"
	"enjin/test/harness"
)

// open starts a throwaway PostgreSQL for the test and opens a migrated store on it.
func open(t *testing.T) *inventory.Store {
	t.Helper()
	pg := harness.StartPostgres(t)
	url := pg.CreateDatabase(t, "")
	s, err := inventory.Open(t.Context(), url, harness.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestMigrationsAreIdempotent(t *testing.T) {
	url := harness.StartPostgres(t).CreateDatabase(t, "")
	for range 3 {
		s, err := inventory.Open(t.Context(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

func register(t *testing.T, s *inventory.Store, id enjin.NodeID, comp string) {
	t.Helper()
	if _, err := s.RegisterNode(t.Context(), inventory.Node{ID: id, Ring: enjin.Ring1, Supervision: "process",
		Observation: "self", AttestPub: "key-" + string(id), Compartment: comp}); err != nil {
		t.Fatal(err)
	}
}

func obs(node enjin.NodeID, seq uint64) inventory.Record {
	return inventory.Record{SignedObservation: enjin.SignedObservation{Node: node, Seq: seq, TsNs: time.Now().UnixNano(), ReceivedAt: time.Now(),
		Signer: "key-" + string(node), Sig: []byte("sig"), Payload: []byte(fmt.Sprintf(`{"seq":%d}`, seq))}, State: "up"}
}

func TestIngestDeduplicatesAndMovesLatestForward(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	register(t, s, "n1", "")
	register(t, s, "n2", "")
	a, b, c := obs("n1", 10), obs("n1", 11), obs("n2", 5)
	if err := s.Ingest(ctx, []inventory.Record{a, b, c, a}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ingest(ctx, []inventory.Record{b, a}); err != nil { // a re-delivery
		t.Fatal(err)
	}
	got, err := s.Observations(ctx, "n1", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq != 11 || got[1].Seq != 10 || string(got[0].Payload) != `{"seq":11}` {
		t.Fatalf("observations of n1: %+v", got)
	}
	n, _ := s.GetNode(ctx, "n1")
	if n.LastSeq != 11 || n.State != "up" || n.ObservedState != "up" || n.LastObsAt == nil {
		t.Fatalf("n1 after ingest: %+v", n)
	}
	// An older observation arriving late does not move the node back.
	if err := s.Ingest(ctx, []inventory.Record{obs("n1", 3)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.GetNode(ctx, "n1"); n.LastSeq != 11 {
		t.Fatalf("last seq moved back to %d", n.LastSeq)
	}
	all, _ := s.ObservationsAfter(ctx, "", 0, 100)
	if len(all) != 4 {
		t.Fatalf("%d observations stored, want 4", len(all))
	}
}

func TestCompartmentsAreADAG(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	mk := func(label string, parents ...string) inventory.Compartment {
		c, err := s.CreateCompartment(ctx, inventory.Compartment{Ring: 0, Type: "rack", Label: label, Parents: parents})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	row, feed := mk("row-1"), mk("feed-a")
	rack := mk("rack-1", row.ID, feed.ID)
	if len(rack.Parents) != 2 {
		t.Fatalf("rack parents %v", rack.Parents)
	}
	// row under rack would close row → rack → row.
	if _, err := s.UpdateCompartment(ctx, row.ID, row.Version, inventory.CompartmentPatch{Parents: &[]string{rack.ID}}); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("cycle: %v", err)
	}
	if _, err := s.UpdateCompartment(ctx, rack.ID, rack.Version, inventory.CompartmentPatch{Parents: &[]string{rack.ID}}); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("self-parent: %v", err)
	}
	if _, err := s.CreateCompartment(ctx, inventory.Compartment{Type: "rack", Label: "x", Parents: []string{inventory.NewID()}}); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("missing parent: %v", err)
	}
	label := "row-one"
	up, err := s.UpdateCompartment(ctx, row.ID, row.Version, inventory.CompartmentPatch{Label: &label})
	if err != nil || up.Version != row.Version+1 {
		t.Fatalf("update: %v %+v", err, up)
	}
	if _, err := s.UpdateCompartment(ctx, row.ID, row.Version, inventory.CompartmentPatch{Label: &label}); !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("stale version: %v", err)
	}
	if err := s.DeleteCompartment(ctx, row.ID, row.Version); !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("stale delete: %v", err)
	}
	if err := s.DeleteCompartment(ctx, row.ID, up.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetCompartment(ctx, row.ID); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("deleted: %v", err)
	}
	h, _ := s.History(ctx, "compartment", row.ID)
	if len(h) != 3 {
		t.Fatalf("history of row: %d versions, want 3", len(h))
	}
}

func TestJoinTokenIsOneTime(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	register(t, s, "ext-1", "")
	tok, err := s.CreateJoinToken(ctx, "ext-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.RedeemJoinToken(ctx, tok, "UABC", "attest-1")
	if err != nil || n.AuthPub != "UABC" || n.AttestPub != "attest-1" {
		t.Fatalf("redeem: %v %+v", err, n)
	}
	if _, err := s.RedeemJoinToken(ctx, tok, "UXYZ", "attest-2"); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("second use: %v", err)
	}
	old, _ := s.CreateJoinToken(ctx, "ext-1", -time.Second)
	if _, err := s.RedeemJoinToken(ctx, old, "U1", "a"); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("expired: %v", err)
	}
	keys, _ := s.AttestationKeys(ctx, "ext-1")
	if len(keys) != 2 {
		t.Fatalf("key history %v", keys)
	}
}

func TestRetentionDropsOldPartitions(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	if err := s.SetRetention(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRetention(ctx, 0); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("zero retention: %v", err)
	}
	dropped, err := s.ApplyRetention(ctx, time.Now())
	if err != nil || len(dropped) != 0 {
		t.Fatalf("nothing is old yet: %v %v", dropped, err)
	}
	dropped, err = s.ApplyRetention(ctx, time.Now().Add(5*24*time.Hour))
	if err != nil || len(dropped) != 4 {
		t.Fatalf("five days on, dropped %v (%v), want the 4 partitions", dropped, err)
	}
	if err := s.EnsurePartitions(ctx); err != nil {
		t.Fatal(err)
	}
	register(t, s, "n1", "")
	if err := s.Ingest(ctx, []inventory.Record{obs("n1", 1)}); err != nil {
		t.Fatal(err)
	}
}

func TestTenants(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	register(t, s, "n1", "")
	tn, err := s.CreateTenant(ctx, inventory.Tenant{ID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTenant(ctx, inventory.Tenant{ID: "acme"}); !errors.Is(err, inventory.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := s.CreateTenant(ctx, inventory.Tenant{ID: "a.b"}); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("bad id: %v", err)
	}
	if err := s.AddTenantHost(ctx, "acme", "n1", "AKEY"); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetTenant(ctx, "acme")
	if len(got.Hosts) != 1 || got.Hosts[0].Node != "n1" || got.Hosts[0].ScopedPub != "AKEY" {
		t.Fatalf("hosts: %+v", got.Hosts)
	}
	if err := s.DeleteTenant(ctx, "acme", tn.Version+5); !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("stale delete: %v", err)
	}
	if err := s.DeleteTenant(ctx, "acme", tn.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTenant(ctx, "acme"); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("deleted: %v", err)
	}
}

// A ring 1 node's observations of its instances register them as its ring 2 children — only
// for tenants it hosts — and are stored under them with the observer's signature.
func TestIngestChildren(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	register(t, s, "host-a", "")
	register(t, s, "host-b", "")
	if _, err := s.CreateTenant(ctx, inventory.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTenantHost(ctx, "acme", "host-a", "AKEY"); err != nil {
		t.Fatal(err)
	}
	child := func(node, observer string, tenant string, seq uint64, state string) inventory.Record {
		o := obs(enjin.NodeID(observer), seq)
		o.Node, o.Observer, o.Tenant, o.App, o.State = enjin.NodeID(node), enjin.NodeID(observer), enjin.TenantID(tenant), "web", state
		return o
	}
	batch := []inventory.Record{obs("host-a", 5), child("acme-web-0", "host-a", "acme", 5, "healthy"),
		obs("host-b", 5), child("acme-web-1", "host-b", "acme", 5, "healthy"), // host-b does not host acme
		child("host-a", "host-b", "acme", 5, "healthy")} // nor may it report on another host
	if err := s.Ingest(ctx, batch); err != nil {
		t.Fatal(err)
	}
	n, err := s.GetNode(ctx, "acme-web-0")
	if err != nil || n.Ring != 2 || n.ParentNode != "host-a" || n.State != "up" || n.Observation != "probe" || n.Metadata["tenant"] != "acme" {
		t.Fatalf("child: %v %+v", err, n)
	}
	if _, err := s.GetNode(ctx, "acme-web-1"); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("a host registered a child of a tenant it does not host: %v", err)
	}
	got, _ := s.Observations(ctx, "acme-web-0", 10, 0)
	if len(got) != 1 || got[0].Observer != "host-a" || got[0].Signer != "key-host-a" {
		t.Fatalf("child observations: %+v", got)
	}
	if got, _ := s.Observations(ctx, "host-a", 10, 0); len(got) != 1 || got[0].Observer != "" {
		t.Fatalf("host-a's own observations: %+v", got)
	}
	if err := s.Ingest(ctx, []inventory.Record{obs("host-a", 6), child("acme-web-0", "host-a", "acme", 6, "crashed")}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.GetNode(ctx, "acme-web-0"); n.State != "suspect" || n.ObservedState != "crashed" {
		t.Fatalf("crashed child: %+v", n)
	}
}

// Ring 0 members starting together on a fresh database all open it: the migrations run once,
// whoever gets there first.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	url := harness.StartPostgres(t).CreateDatabase(t, "")
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := inventory.Open(t.Context(), url, nil)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestIngestIsOneTransaction: a batch whose last statement fails leaves nothing of the
// batch behind — not the observations appended before it, nor the nodes' rows moved.
func TestIngestIsOneTransaction(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	register(t, s, "host-a", "")
	if _, err := s.CreateTenant(ctx, inventory.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTenantHost(ctx, "acme", "host-a", "AKEY"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ingest(ctx, []inventory.Record{obs("host-a", 1)}); err != nil {
		t.Fatal(err)
	}
	// The child's observation is stamped in a year no partition holds: its insert, the
	// batch's third statement, fails after the host's observation went in.
	late := obs("host-a", 2)
	late.Node, late.Observer, late.Tenant, late.App, late.State = "acme-web-0", "host-a", "acme", "web", "healthy"
	late.TsNs = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	if err := s.Ingest(ctx, []inventory.Record{obs("host-a", 2), late}); err == nil {
		t.Fatal("a batch with an observation no partition holds was stored")
	}
	if got, _ := s.Observations(ctx, "host-a", 10, 0); len(got) != 1 || got[0].Seq != 1 {
		t.Fatalf("host-a's observations after the failed batch: %+v", got)
	}
	if n, err := s.GetNode(ctx, "host-a"); err != nil || n.LastSeq != 1 {
		t.Fatalf("host-a's row moved with a failed batch: %v %+v", err, n)
	}
	if _, err := s.GetNode(ctx, "acme-web-0"); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("the failed batch registered its child: %v", err)
	}
}
