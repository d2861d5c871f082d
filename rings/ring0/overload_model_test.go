package ring0

import (
	"container/heap"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"enjin/bus"
	"enjin/test/harness"
)

// Under an overload the ingester's own admission and pacing (admits, noteWait, repace,
// readmit) keep a modelled ring 0 busy: it commits at least 85 % of what it can while 1.5
// and 2 times that is offered, with a deferral costing it a fifth to a half of a commit —
// and at least 70 % when it starts cold, under load — and what it accepts is acknowledged
// within 2 s at p99.
//
// The model is deterministic, so the controller can be tuned on it — `enjin bench ingest`
// on these machines spreads too much from run to run (14,900 to 24,500 committed a second
// for one binary) to tell a better rule from a worse one. Calibrated on the bench, it shows
// what the bench showed with the rule before the last but one (late spells as soon as waits
// passed half of what admission lets wait, a least retry-after of 1 s): a storm of deferrals
// in seconds 2–4 whose waits grew to 20 s, then seconds in which ring 0 idled while the
// nodes it had sent away waited — 84, 59, 72 and 86 % here in the first four cases, 65–82 %
// on the bench at 1.5 times.
//
// The last three cases came later, from the bench's per-second figures: on the bench ring 0
// commits a third to a half of its capacity in the first 2–4 s of load, and a deferral costs
// it 0.45–0.65 of a commit (its CPU per acknowledgement, with and without deferrals). With
// the rule before this one — the whole queue admitted before the first second had measured
// a rate, the wait growing up to fourfold a second — they commit 76, 64 and 59 % with p99s
// of 1.8, 2.3 and 3.0 s: the start admits more than a cold ring 0 commits in 2 s, then
// defers storms at a wait grown to 20 s and idles.
func TestOverloadModelKeepsRing0Busy(t *testing.T) {
	for _, sc := range []overloadModel{
		{nodes: 100_000, rate: 45_000, capacity: 30_000, deferCost: 0.2, offered: 15 * time.Second},
		{nodes: 100_000, rate: 45_000, capacity: 30_000, deferCost: 0.33, offered: 15 * time.Second},
		{nodes: 100_000, rate: 60_000, capacity: 30_000, deferCost: 0.33, offered: 15 * time.Second},
		{nodes: 40_000, rate: 60_000, capacity: 30_000, deferCost: 0.33, offered: 10 * time.Second},
		{nodes: 100_000, rate: 45_000, capacity: 30_000, deferCost: 0.5, offered: 15 * time.Second},
		// Cold: a third of capacity at first, all of it after 3 s, as ring 0 on the bench.
		{nodes: 100_000, rate: 45_000, capacity: 28_000, deferCost: 0.33, offered: 15 * time.Second, cold: 3 * time.Second},
		{nodes: 100_000, rate: 45_000, capacity: 28_000, deferCost: 0.5, offered: 15 * time.Second, cold: 3 * time.Second},
	} {
		g := newIngester(ingestOptions{Workers: 2, MaxRetryAfter: 20 * time.Second}, nil, bus.NewVerifier(0), harness.Logger(t), nil)
		r := sc.run(g)
		t.Logf("%d nodes offering %.0f/s to a ring 0 committing %.0f/s (cold for %v), a deferral costing %.2f of a commit: committed %.0f/s while offered (%.0f %%), %d deferred, accepted ack p99 %v, all %d acknowledged after %v",
			sc.nodes, sc.rate, sc.capacity, sc.cold, sc.deferCost, r.whileOffered, 100*r.whileOffered/sc.capacity, r.deferred, r.p99, r.acked, r.span)
		// Cold, the first 3 s hold a second of capacity less: 93 % would be all of it.
		least := 0.85
		if sc.cold > 0 {
			least = 0.70
		}
		if r.whileOffered < least*sc.capacity || r.p99 > 2*time.Second || r.acked != int(sc.rate*sc.offered.Seconds()) {
			t.Errorf("committed %.0f/s of %.0f, p99 %v, %d acknowledged: want ≥ %.0f %%, ≤ 2 s, every one", r.whileOffered, sc.capacity, r.p99, r.acked, 100*least)
		}
	}
}

// overloadModel is a fleet of ring 1 nodes and a ring 0, in steps of a millisecond. Each
// node sends its heartbeats as one does (bench/fleet.go, rings/ring1): one at a time, the
// next once the last is acknowledged, and after a deferral nothing until the wait asked for,
// jittered ½–1½×, has passed. Ring 0 spends capacity a second: a commit costs 1/capacity, a
// deferral deferCost of that; what it admits waits in one queue, committed in order.
type overloadModel struct {
	nodes     int
	rate      float64 // heartbeats a second, all nodes together
	capacity  float64 // commits a second while doing nothing else
	deferCost float64 // a deferral's cost as a share of a commit's
	offered   time.Duration
	// cold: ring 0 starts at a third of its capacity and reaches all of it after cold, as on
	// the bench, where the first seconds of load commit a third to a half of what they do later.
	cold  time.Duration
	trace func(format string, args ...any) // each second's figures, if set
}

type modelResult struct {
	whileOffered float64 // commits a second while the load was offered
	deferred     int
	acked        int
	p99          time.Duration // accepted send → acknowledgement
	span         time.Duration // until the last acknowledgement
}

// modelNet is the one-way network delay, modelCommit how long a batch takes beyond its wait.
const (
	modelNet    = time.Millisecond
	modelCommit = 10 * time.Millisecond
)

type modelSend struct {
	at      time.Duration // arrival at ring 0, or (again) when a deferred node sends again
	node, k int
	again   bool
}

type modelSends []modelSend

func (h modelSends) Len() int           { return len(h) }
func (h modelSends) Less(i, j int) bool { return h[i].at < h[j].at }
func (h modelSends) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *modelSends) Push(x any)        { *h = append(*h, x.(modelSend)) }
func (h *modelSends) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (sc overloadModel) run(g *ingester) modelResult {
	type node struct {
		next              int
		inflight, waiting bool
	}
	type ack struct {
		at, sent time.Duration
		node, k  int
	}
	var (
		epoch                = time.Unix(1_000_000, 0)
		rnd                  = rand.New(rand.NewPCG(1, 2))
		total                = int(sc.rate * sc.offered.Seconds())
		nodes                = make([]node, sc.nodes)
		sends                modelSends
		queue                []modelSend
		acks                 []ack
		lats                 []time.Duration
		produced             int
		res                  modelResult
		periodAcked, periodD uint64
		debt                 time.Duration
	)
	for i := range nodes {
		nodes[i].next = i
	}
	due := func(k int) time.Duration { return time.Duration(float64(k) / sc.rate * float64(time.Second)) }
	commit := time.Duration(float64(time.Second) / sc.capacity)
	deferral := time.Duration(sc.deferCost * float64(commit))
	send := func(at time.Duration, n, k int) { heap.Push(&sends, modelSend{at: at + modelNet, node: n, k: k}) }
	const tick = time.Millisecond
	for now := time.Duration(0); res.acked < total && now < sc.offered+5*time.Minute; now += tick {
		for ; produced < total && due(produced) <= now; produced++ {
			n := &nodes[produced%sc.nodes]
			if !n.inflight && !n.waiting && n.next == produced {
				n.inflight = true
				send(now, produced%sc.nodes, produced)
			}
		}
		for len(acks) > 0 && acks[0].at <= now {
			a := acks[0]
			acks = acks[1:]
			res.acked++
			periodAcked++
			if a.at <= sc.offered {
				res.whileOffered++
			}
			res.span = a.at
			lats = append(lats, a.at-a.sent)
			n := &nodes[a.node]
			n.next = a.k + sc.nodes
			n.inflight = n.next < produced
			if n.inflight {
				send(a.at, a.node, n.next)
			}
		}
		budget := tick - debt
		if sc.cold > 0 && now < sc.cold {
			budget -= tick * 2 / 3 * (sc.cold - now) / sc.cold
		}
		for sends.Len() > 0 && sends[0].at <= now {
			s := heap.Pop(&sends).(modelSend)
			n := &nodes[s.node]
			if s.again {
				n.waiting, n.inflight = false, true
				send(s.at, s.node, s.k)
				continue
			}
			if g.admits(int64(len(queue))) {
				queue = append(queue, s)
				continue
			}
			res.deferred++
			periodD++
			budget -= deferral
			wait := time.Duration(g.retryAfter.Load())
			n.inflight, n.waiting = false, true
			heap.Push(&sends, modelSend{at: s.at + modelNet + wait/2 + time.Duration(rnd.Int64N(int64(wait))), node: s.node, k: s.k, again: true})
		}
		for budget > 0 && len(queue) > 0 {
			s := queue[0]
			queue = queue[1:]
			budget -= commit
			g.noteWait(epoch.Add(now), epoch.Add(s.at))
			acks = append(acks, ack{at: now + modelCommit + modelNet, sent: s.at - modelNet, node: s.node, k: s.k})
		}
		debt = max(0, -budget) // idle time is not saved up
		if now%time.Second == 0 && now > 0 {
			if sc.trace != nil {
				sc.trace("%2ds acked %6d deferred %6d queued %6d admit %6d retry-after %v", now/time.Second, periodAcked, periodD, len(queue), g.admit.Load(), time.Duration(g.retryAfter.Load()))
			}
			g.repace(periodD, periodAcked)
			g.readmit(periodAcked, periodD, time.Second)
			periodD, periodAcked = 0, 0
		}
	}
	res.whileOffered /= sc.offered.Seconds()
	slices.Sort(lats)
	if len(lats) > 0 {
		res.p99 = lats[len(lats)*99/100]
	}
	return res
}
