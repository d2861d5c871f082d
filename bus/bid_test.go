package bus_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"enjin"
	"enjin/bus"
	"enjin/keys"
)

// A bid opens with its node's key and answers the offer it was made for; a changed byte,
// another node's key, a bid for another offer or app, and an observation signature passed off
// as a bid's are each refused.
func TestSignedBids(t *testing.T) {
	k, _ := keys.NewAttestation()
	other, _ := keys.NewAttestation()
	offer := bus.Offer{ID: "0f1e", Tenant: "acme", App: "web"}
	bid := bus.Bid{Offer: offer.ID, Node: "h1", Tenant: "acme", App: "web", At: time.Now(), MemFreeMB: 2048, Promise: "run it"}
	sb, err := bus.SignBid(k, bid)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sb.Open(other.Public(), k.Public())
	if err != nil || got.MemFreeMB != 2048 || got.Answers(offer, "h1") != nil {
		t.Fatalf("a good bid: %+v %v", got, err)
	}

	tampered := sb
	tampered.Bid = bytes.Replace(sb.Bid, []byte("2048"), []byte("9048"), 1)
	forged, _ := bus.SignBid(other, bid) // another key, claiming to be h1's
	forged.Signer = k.Public()
	obs := k.Sign(bus.Canonical(nil, "h1", 1, 1, sb.Bid)) // the same bytes, signed as an observation
	asObs := bus.SignedBid{Bid: sb.Bid, Signer: k.Public(), Sig: obs}
	for what, b := range map[string]bus.SignedBid{"a changed byte": tampered, "another key's signature": forged, "an observation's signature": asObs} {
		if _, err := b.Open(k.Public()); !errors.Is(err, bus.ErrBid) {
			t.Fatalf("%s: %v; want ErrBid", what, err)
		}
	}
	if _, err := sb.Open(other.Public()); !errors.Is(err, bus.ErrBid) {
		t.Fatalf("a bid signed by a key that is not the node's: %v", err)
	}
	for what, o := range map[string]bus.Offer{"another offer": {ID: "aaaa", Tenant: "acme", App: "web"}, "another app": {ID: offer.ID, Tenant: "acme", App: "api"},
		"a VM of the app's name": {ID: offer.ID, Kind: bus.PlaceVM, Tenant: "acme", App: "web"}} {
		if err := got.Answers(o, "h1"); !errors.Is(err, bus.ErrBid) {
			t.Fatalf("%s: %v", what, err)
		}
	}
	if err := got.Answers(offer, "h2"); !errors.Is(err, bus.ErrBid) {
		t.Fatalf("h1's bid taken as h2's: %v", err)
	}
}

// TestVerifyStoredBid: a placement's stored bid verifies offline only as its node's bid for
// that placement; every way it can be wrong is named.
func TestVerifyStoredBid(t *testing.T) {
	k, _ := keys.NewAttestation()
	other, _ := keys.NewAttestation()
	raw := func(b bus.Bid, by *keys.Attestation) json.RawMessage {
		sb, err := bus.SignBid(by, b)
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(sb)
		return j
	}
	app := bus.Bid{Offer: "0f1e", Node: "h1", Tenant: "acme", App: "web", At: time.Now()}
	vm := app
	vm.Kind = bus.PlaceVM
	registered := []string{other.Public(), k.Public()}
	for name, c := range map[string]struct {
		raw             json.RawMessage
		kind, node, app string
		registered      []string
		want            string
	}{
		"an app's bid":          {raw(app, k), "app", "h1", "web", registered, ""},
		"a VM's bid":            {raw(vm, k), bus.PlaceVM, "h1", "web", registered, ""},
		"none":                  {nil, "app", "h1", "web", registered, "no bid stored"},
		"null":                  {json.RawMessage("null"), "app", "h1", "web", registered, "no bid stored"},
		"unreadable":            {json.RawMessage(`{"bid":12}`), "app", "h1", "web", registered, "the stored bid is unreadable"},
		"another node's key":    {raw(app, k), "app", "h1", "web", []string{other.Public()}, "no key of the node"},
		"for another app":       {raw(app, k), "app", "h1", "api", registered, "the bid is h1's for app acme/web"},
		"another node's bid":    {raw(app, k), "app", "h2", "web", registered, "the bid is h1's for app acme/web"},
		"an app's bid for a VM": {raw(app, k), bus.PlaceVM, "h1", "web", registered, "the bid is h1's for app acme/web"},
		"a VM's bid for an app": {raw(vm, k), "app", "h1", "web", registered, "the bid is h1's for vm acme/web"},
	} {
		got := bus.VerifyStoredBid(c.raw, c.kind, enjin.NodeID(c.node), "acme", c.app, c.registered)
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", name, got, c.want)
		}
	}
}
