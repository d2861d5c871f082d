package ring0

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/services/api"
	"enjin/services/inventory"
	"enjin/test/harness"
)

// Hosts that lie about who they are lose the auction: a bid signed with another key than the
// host's own, or one a host signs for another host, is not taken however much it promises;
// among the honest, the host running fewest of the tenant's apps wins, then the one with more
// memory free; with no honest bid the placement fails.
func TestAuctionTakesOnlyHonestBids(t *testing.T) {
	pg := harness.StartPostgres(t)
	r := startMember(t, t.TempDir(), pg.CreateDatabase(t, ""))
	ctx := t.Context()
	own := map[enjin.NodeID]*keys.Attestation{}
	for _, id := range []enjin.NodeID{"h1", "h2", "h3", "h4"} {
		k, err := keys.NewAttestation()
		if err != nil {
			t.Fatal(err)
		}
		own[id] = k
		if _, err := r.store.RegisterNode(ctx, inventory.Node{ID: id, Ring: enjin.Ring1, Supervision: "external", Observation: "self", AttestPub: k.Public()}); err != nil {
			t.Fatal(err)
		}
	}
	stranger, _ := keys.NewAttestation()
	// answer makes host id answer offers with a bid signed by k, claiming to be as and to have
	// mem MiB free.
	answer := func(id enjin.NodeID, k *keys.Attestation, as enjin.NodeID, mem int64) {
		nc, err := r.dial(keys.RING1, string(id), bus.Ring1NodePerms(id))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if _, err := bus.Handle(nc, bus.Ring1Cmd(id, bus.VerbBid), "", func(_ *nats.Msg, o bus.Offer) (bus.SignedBid, error) {
			return bus.SignBid(k, bus.Bid{Offer: o.ID, Kind: o.Kind, Node: as, Tenant: o.Tenant, App: o.App, At: time.Now(), MemFreeMB: mem})
		}); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	answer("h1", own["h1"], "h1", 1000)
	answer("h2", stranger, "h2", 99999)  // not h2's key
	answer("h3", own["h3"], "h1", 99999) // h3's key, but a bid as h1
	answer("h4", own["h4"], "h4", 2000)  // honest, more memory than h1
	hosts := func(ids ...enjin.NodeID) []api.AppsBackend {
		var out []api.AppsBackend
		for _, id := range ids {
			out = append(out, api.AppsBackend{Node: id})
		}
		return out
	}
	offer := bus.Offer{Tenant: "acme", App: "web"}

	w, err := r.auction(ctx, offer, hosts("h1", "h2", "h3"), nil)
	if err != nil || w.backend.Node != "h1" {
		t.Fatalf("h1, the one honest bidder, should win: %+v %v", w.bid, err)
	}
	if w, err := r.auction(ctx, offer, hosts("h2", "h3"), nil); err == nil || !errors.Is(err, ErrNode) {
		t.Fatalf("only lying bidders: won by %s (%v); want no placement", w.backend.Node, err)
	}
	if w, err := r.auction(ctx, offer, hosts("h1", "h4"), nil); err != nil || w.backend.Node != "h4" {
		t.Fatalf("equal apps: the one with more memory free (h4) should win: %s %v", w.backend.Node, err)
	}
	if w, err := r.auction(ctx, offer, hosts("h1", "h4"), map[enjin.NodeID]int{"h4": 2}); err != nil || w.backend.Node != "h1" {
		t.Fatalf("h4 runs two of acme's apps: h1 should win: %s %v", w.backend.Node, err)
	}
}
