package test

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin/bus"
	"enjin/keys"
	"enjin/test/harness"
)

// TestRevocationClosesLiveConnection revokes a live ring 1 node's credential, over many
// trials, and measures the time from the revoke call to the client learning it was revoked.
// The revoked credential cannot reconnect; one re-issued with a new key can.
func TestRevocationClosesLiveConnection(t *testing.T) {
	c := harness.StartBroker(t)
	const trials = 25
	var lat []time.Duration
	cr, _ := c.Ring1Node(t, "n1")
	for i := range trials {
		revoked := make(chan time.Time, 1)
		nc := c.Connect(t, cr, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if bus.Terminal(err) {
				select {
				case revoked <- time.Now():
				default:
				}
			}
		}))
		t0 := time.Now()
		if err := c.Broker.Revoke(t.Context(), keys.RING1, cr.PublicKey); err != nil {
			t.Fatal(err)
		}
		select {
		case at := <-revoked:
			lat = append(lat, at.Sub(t0))
		case <-time.After(5 * time.Second):
			t.Fatalf("trial %d: connection not revoked within 5s", i)
		}
		harness.Eventually(t, 5*time.Second, nc.IsClosed, "trial %d: revoked connection closes", i)
		if _, err := bus.Connect(c.URL, cr, nats.MaxReconnects(0)); err == nil {
			t.Fatalf("trial %d: revoked credential reconnected", i)
		}
		// Re-issue with a new key: it connects.
		cr, _ = c.Ring1Node(t, "n1")
	}
	final := c.Connect(t, cr)
	if !final.IsConnected() {
		t.Fatal("re-issued credential cannot connect")
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[(len(lat)*99+99)/100-1]
	t.Logf("revocation over %d trials: p50 %v, p99 %v, max %v", trials, p50, p99, lat[len(lat)-1])
	if p99 > time.Second {
		t.Fatalf("p99 %v > 1s", p99)
	}
	a, _ := c.Chain.Account(keys.RING1)
	ac, err := a.Claims()
	if err != nil {
		t.Fatal(err)
	}
	if len(ac.Revocations) != trials {
		t.Fatalf("%d revocations in RING1's JWT, want %d", len(ac.Revocations), trials)
	}
}

// A revocation outlives the broker: after a restart on the same state directory the revoked
// credential still cannot connect, and the rest of the chain still works.
func TestRevocationSurvivesRestart(t *testing.T) {
	c := harness.StartBroker(t)
	revoked, _ := c.Ring1Node(t, "n1")
	kept, _ := c.Ring1Node(t, "n2")
	if err := c.Broker.Revoke(t.Context(), keys.RING1, revoked.PublicKey); err != nil {
		t.Fatal(err)
	}
	c.Broker.Close()

	c2 := harness.StartBrokerIn(t, c.Dir)
	if _, err := bus.Connect(c2.URL, revoked, nats.MaxReconnects(0)); err == nil {
		t.Fatal("revoked credential connects after restart")
	}
	nc := c2.Connect(t, kept)
	if !nc.IsConnected() {
		t.Fatal("unrevoked credential cannot connect after restart")
	}
}
