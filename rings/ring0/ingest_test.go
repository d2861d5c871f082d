package ring0

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"enjin/bus"
	"enjin/rings"
	"enjin/test/harness"
)

// A full ingest queue defers what comes next at once — the reason and when to send again in
// the answer — instead of holding it: what ring 0 keeps stays bounded by the queue.
func TestFullQueueDefers(t *testing.T) {
	c := harness.StartBroker(t)
	g := newIngester(ingestOptions{Queue: 2, RetryAfter: 300 * time.Millisecond}, nil, bus.NewVerifier(0), harness.Logger(t), nil)
	nc := c.Connect(t, c.Ring0Ingest(t))
	if _, err := nc.Subscribe(bus.Ring1ObsAll, g.handle); err != nil { // nothing takes from the queue: it only fills
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cr, att := c.Ring1Node(t, "n1")
	node, signer := c.Connect(t, cr), bus.NewSigner("n1", att)
	queued, deferred := 0, 0
	for i := range 6 {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		_, err := bus.SendObservation(ctx, node, signer, bus.Ring1Obs("n1"), rings.Observation{Node: "n1", State: "up"})
		cancel()
		var re *bus.RemoteError
		switch {
		case errors.As(err, &re) && re.RetryAfter == 300*time.Millisecond && strings.Contains(re.Msg, "overloaded"):
			deferred++
		case errors.Is(err, context.DeadlineExceeded) && deferred == 0:
			queued++ // taken into the queue: answered once committed, which no loop here does
		default:
			t.Fatalf("observation %d: %v", i, err)
		}
	}
	if queued != 2 || deferred != 4 || g.deferred.Load() != 4 || len(g.in) != 2 {
		t.Fatalf("%d queued, %d deferred (counted %d), queue holds %d; want 2, 4, 4, 2", queued, deferred, g.deferred.Load(), len(g.in))
	}
}
