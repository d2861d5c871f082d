package ring0

import (
	"context"
	"time"
)

// admits says whether one more observation may wait, backlog counting what waits: not past
// the admission bound.
func (g *ingester) admits(backlog int64) bool {
	return backlog < g.admit.Load()
}

// pace sets the wait deferrals ask for, every period: when more arrived than ring 0
// acknowledged, the deferred nodes came back too soon, so the wait grows by that ratio (at
// most twofold a period, up to MaxRetryAfter); when nothing was deferred it halves back
// towards RetryAfter. Twofold, not more: a ring 0 starting under load acknowledges a third of
// what it will, so the ratio overstates the overload, and the nodes sent away for longer
// leave it idle later (TestOverloadModelKeepsRing0Busy, cold: 76 % fourfold, 80 % twofold).
func (g *ingester) pace(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	lastD, lastA := g.deferred.Load(), g.acked.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d, a := g.deferred.Load(), g.acked.Load()
		g.repace(d-lastD, a-lastA)
		g.readmit(a-lastA, d-lastD, period)
		lastD, lastA = d, a
	}
}

// repace sets the wait deferrals ask for from what one period deferred and acknowledged.
func (g *ingester) repace(deferred, acked uint64) {
	ra := float64(g.retryAfter.Load())
	if deferred == 0 {
		ra /= 2
	} else {
		ra *= min(2, float64(deferred+acked)/float64(max(acked, 1)))
	}
	g.retryAfter.Store(int64(min(max(ra, float64(g.opts.RetryAfter)), float64(g.opts.MaxRetryAfter))))
}

// readmit sets how many observations may wait from what one period acknowledged: what
// ring 0 commits in admitShare × MaxWait, at least a few batches and at most Queue.
// Little's law says what is admitted waits about admitted/rate. A bound of what commits in
// a third of MaxWait would hold the rate where it is whenever a full pipeline takes that
// long anyway (a 2,000-observation batch commits in a thirtieth of MaxWait), so a rate that
// a start or a spike lowered would never climb back — ring 0 would defer a third of what it
// can commit. With twice that the rate climbs to what ring 0 can commit, and only then does
// the backlog reach the bound; and a queue at the bound still drains within MaxWait, so it
// does not halve the bound (see noteWait).
//
// A period that deferred nothing measured the load, not what ring 0 can take: it may raise
// the bound but not lower it — after a quiet spell, ring 0 would otherwise meet the next
// burst admitting a trickle and defer the rest, and the deferrals' round trips would cost
// the CPU the burst needed.
func (g *ingester) readmit(acked, deferred uint64, period time.Duration) {
	n := int64(admitShare * float64(acked) * g.opts.MaxWait.Seconds() / period.Seconds())
	if deferred == 0 {
		n = max(n, g.admit.Load())
	}
	g.admit.Store(min(max(n, g.rounds(4)), int64(g.opts.Queue)))
}

// rounds is what n rounds of the verification goroutines take, at most Queue.
func (g *ingester) rounds(n int) int64 {
	return int64(min(g.opts.Queue, n*verifyBatch*g.opts.Workers))
}

// admitShare is the share of MaxWait whose commits ring 0 admits (see readmit).
const admitShare = 2.0 / 3
