package ring0

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
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
		_, err := bus.SendObservation(ctx, node, signer, bus.Ring1Obs("n1"), enjin.Observation{Node: "n1", State: "up"})
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

// Once every batch taken for MaxWait began with an observation that had waited past
// MaxWait, ring 0 halves what it admits, and again each MaxWait that goes on, down to a few
// batches; a passing spike does not; and what comes beyond the bound is deferred at once,
// with the reason, while what waits within it is not.
func TestLateQueueHalvesWhatIsAdmitted(t *testing.T) {
	c := harness.StartBroker(t)
	const maxWait = 50 * time.Millisecond
	g := newIngester(ingestOptions{Queue: 100_000, Workers: 1, MaxWait: maxWait, RetryAfter: 300 * time.Millisecond}, nil, bus.NewVerifier(0), harness.Logger(t), nil)
	start := g.rounds(32)
	g.admit.Store(start)
	t0, late := time.Now(), time.Now().Add(-time.Second)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for i, step := range []struct {
		now, arrived time.Time
		want         int64
	}{
		{at(0), late, start},                                          // late: noted
		{at(20 * time.Millisecond), late, start},                      // late for less than MaxWait: a spike
		{at(40 * time.Millisecond), at(30 * time.Millisecond), start}, // on time: the spell is over
		{at(60 * time.Millisecond), late, start},                      // late again, noted afresh
		{at(100 * time.Millisecond), late, start},                     // 40 ms of it
		{at(110 * time.Millisecond), late, start / 2},                 // MaxWait of it: halved
		{at(130 * time.Millisecond), late, start / 2},                 // not again at once
		{at(160 * time.Millisecond), late, start / 4},                 // MaxWait more: halved again
		{at(210 * time.Millisecond), late, start / 8},
		{at(260 * time.Millisecond), late, g.rounds(4)}, // a few batches at least
		{at(310 * time.Millisecond), late, g.rounds(4)},
	} {
		g.noteWait(step.now, step.arrived)
		if got := g.admit.Load(); got != step.want {
			t.Fatalf("step %d: admits %d, want %d", i, got, step.want)
		}
	}

	// At the bound, the next observation is deferred at once, with the reason.
	nc := c.Connect(t, c.Ring0Ingest(t))
	if _, err := nc.Subscribe(bus.Ring1ObsAll, g.handle); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cr, att := c.Ring1Node(t, "n1")
	node, signer := c.Connect(t, cr), bus.NewSigner("n1", att)
	send := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		_, err := bus.SendObservation(ctx, node, signer, bus.Ring1Obs("n1"), enjin.Observation{Node: "n1", State: "up"})
		return err
	}
	g.admit.Store(1)
	if err := send(); !errors.Is(err, context.DeadlineExceeded) || len(g.in) != 1 {
		t.Fatalf("within the bound: %v, queue %d; want it queued (not answered)", err, len(g.in))
	}
	err := send()
	if re, ok := errors.AsType[*bus.RemoteError](err); !ok || re.RetryAfter != 300*time.Millisecond || !strings.Contains(re.Msg, "overloaded") || g.deferred.Load() != 1 || len(g.in) != 1 {
		t.Fatalf("at the bound: %v, %d deferred, queue %d; want deferred with the reason and the wait", err, g.deferred.Load(), len(g.in))
	}
}

// The wait a deferral asks for follows the overload: it grows with what came back too soon
// (at most twofold a period, up to MaxRetryAfter) and halves back once nothing is deferred.
func TestRetryAfterFollowsTheOverload(t *testing.T) {
	g := newIngester(ingestOptions{RetryAfter: time.Second, MaxRetryAfter: 5 * time.Second}, nil, bus.NewVerifier(0), harness.Logger(t), nil)
	for i, step := range []struct {
		deferred, acked uint64
		want            time.Duration
	}{
		{100, 100, 2 * time.Second},
		{300, 100, 4 * time.Second}, // four times as many came: twofold at most
		{300, 100, 5 * time.Second}, // MaxRetryAfter
		{0, 100, 2500 * time.Millisecond},
		{0, 100, 1250 * time.Millisecond},
		{0, 0, time.Second},
		{1000, 0, 2 * time.Second},
	} {
		g.repace(step.deferred, step.acked)
		if got := time.Duration(g.retryAfter.Load()); got != step.want {
			t.Fatalf("step %d: %v, want %v", i, got, step.want)
		}
	}
}

// What may wait follows what ring 0 commits: what commits in two thirds of MaxWait by the
// last period's acknowledgements (before the first, eight batches a verification goroutine),
// at least a few batches, at most the queue — lowered only by a period that deferred (a
// quiet one measured the load, not ring 0); and what waits behind the subscriptions'
// callbacks, or verified for its batch, counts as waiting. Past it, the next observation is
// deferred at once though the queue has room.
func TestAdmissionFollowsTheCommitRate(t *testing.T) {
	c := harness.StartBroker(t)
	g := newIngester(ingestOptions{Queue: 16384, Workers: 2, MaxWait: 900 * time.Millisecond, RetryAfter: 300 * time.Millisecond}, nil, bus.NewVerifier(0), harness.Logger(t), nil)
	if got := g.admit.Load(); got != 8*verifyBatch*2 {
		t.Fatalf("admits %d before the first period, want eight batches a worker, %d", got, 8*verifyBatch*2)
	}
	for _, step := range []struct {
		acked, deferred uint64
		want            int64
	}{
		{20000, 100, 12000},   // measured while deferring: what commits in ⅔ MaxWait
		{0, 0, 12000},         // a quiet second lowers nothing
		{5000, 0, 12000},      // nor does a light one
		{0, 500, 2048},        // deferred and nothing committed: a few batches
		{1_000_000, 0, 16384}, // at most the queue
		{10000, 0, 16384},
		{10000, 50, 6000},
	} {
		if g.readmit(step.acked, step.deferred, time.Second); g.admit.Load() != step.want {
			t.Fatalf("after %d acknowledged and %d deferred in a second: admits %d, want %d", step.acked, step.deferred, g.admit.Load(), step.want)
		}
	}

	nc := c.Connect(t, c.Ring0Ingest(t))
	sub, err := nc.Subscribe(bus.Ring1ObsAll, g.handle)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	g.admit.Store(2)
	cr, att := c.Ring1Node(t, "n1")
	node, signer := c.Connect(t, cr), bus.NewSigner("n1", att)
	var outcomes []string
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		_, err := bus.SendObservation(ctx, node, signer, bus.Ring1Obs("n1"), enjin.Observation{Node: "n1", State: "up"})
		cancel()
		re, ok := errors.AsType[*bus.RemoteError](err)
		switch {
		case ok && re.RetryAfter == 300*time.Millisecond && strings.Contains(re.Msg, "overloaded"):
			outcomes = append(outcomes, "deferred")
		case errors.Is(err, context.DeadlineExceeded):
			outcomes = append(outcomes, "queued")
		default:
			t.Fatalf("observation: %v", err)
		}
	}
	if want := []string{"queued", "queued", "deferred"}; !slices.Equal(outcomes, want) || len(g.in) != 2 {
		t.Fatalf("outcomes %v, queue %d; want %v, 2", outcomes, len(g.in), want)
	}

	// Observations behind a callback that has not run yet count as waiting too.
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	held, err := nc.SubscribeSync(bus.Ring1ObsAll) // nobody takes from it
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	g.subs.Store(&[]*nats.Subscription{held})
	for range 3 {
		if err := node.Publish(bus.Ring1Obs("n1"), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if err := node.Flush(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); g.backlog() < 5 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := g.backlog(); got != 5 {
		t.Fatalf("backlog %d, want 2 queued + 3 held", got)
	}
	g.shards[0] <- pending{} // verified, waiting for its batch
	if got := g.backlog(); got != 6 {
		t.Fatalf("backlog %d, want 2 queued + 3 held + 1 verified", got)
	}
}
