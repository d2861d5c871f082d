package test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/rings/ring1"
	"enjin/test/harness"
)

// TestRejoinRevokesPreviousUser joins a node, then joins it again with new keys (a second
// token): the first credential's live connection closes and cannot reconnect, the second
// works and its observations are taken.
func TestRejoinRevokesPreviousUser(t *testing.T) {
	r := newRing0(t, 200*time.Millisecond)
	const id enjin.NodeID = "ext-b"
	first := r.join(id)
	nc1, err := bus.Connect(r.nats(), first.Creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc1.Close)
	observe := func(nc *nats.Conn, cfg ring1.Config) error {
		_, err := bus.SendObservation(t.Context(), nc, bus.NewSigner(id, cfg.Attestation), bus.Ring1Obs(id),
			enjin.Observation{Node: id, Ring: enjin.Ring1, State: enjin.StateUp, Time: time.Now()})
		return err
	}
	if err := observe(nc1, first); err != nil {
		t.Fatalf("first join: %v", err)
	}

	var tok struct {
		Token string `json:"token"`
	}
	if code := r.call("POST", "/v1/nodes/"+string(id)+"/join-token", map[string]any{"ttl_seconds": 600}, &tok); code != 201 {
		t.Fatalf("second join token: %d", code)
	}
	start := time.Now()
	second, err := ring1.Join(t.Context(), r.api(), tok.Token, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if second.Creds.PublicKey == first.Creds.PublicKey {
		t.Fatal("the second join reused the first user key")
	}
	harness.Eventually(t, 5*time.Second, nc1.IsClosed, "the first credential's connection closes")
	t.Logf("the first connection closed %v after the second join began", time.Since(start).Round(time.Millisecond))
	if _, err := bus.Connect(r.nats(), first.Creds, nats.MaxReconnects(0)); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("reconnecting with the first credential: %v, want an authorization violation", err)
	}
	nc2, err := bus.Connect(r.nats(), second.Creds)
	if err != nil {
		t.Fatalf("the second credential: %v", err)
	}
	t.Cleanup(nc2.Close)
	if err := observe(nc2, second); err != nil {
		t.Fatalf("an observation with the second join's keys: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	if !nc2.IsConnected() {
		t.Fatalf("the second connection dropped: %v", nc2.LastError())
	}
}
