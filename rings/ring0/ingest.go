package ring0

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"enjin"
	"enjin/bus"
	"enjin/services/inventory"
)

// ingestOptions tune the pipeline from the bus to the store.
type ingestOptions struct {
	Shards   int           // batches committed in parallel; a node always lands in the same shard
	MaxBatch int           // observations per transaction
	MaxDelay time.Duration // how long a batch may wait to fill
	Workers  int           // verification goroutines
	// Gather is how long a verification goroutine waits for more observations when it has
	// fewer than a batch's worth: one signature checked alone costs about twice its share of
	// a batch, so a light load pays a little latency rather than CPU.
	Gather time.Duration
	// Queue and QueueBytes bound the observations waiting for verification; one more is
	// refused at once for now (bus.Defer, after RetryAfter) rather than waited for, so what
	// ring 0 holds, and so its memory, stays bounded however many nodes send.
	Queue      int
	QueueBytes int64
	// MaxWait bounds how long accepted observations wait in the queue. Admission lets wait
	// what commits in two thirds of it (see readmit), so a full queue waits less; once
	// observations have waited longer for MaxWait anyway, the commit rate fell below what
	// admission counted on (a slow disk, a busy machine), and ring 0 halves what it admits,
	// again each MaxWait that goes on (see noteWait) — it takes what it can commit in time
	// and sends back the rest at once, rather than acknowledging everything late.
	MaxWait time.Duration
	// RetryAfter is the least wait a deferral asks for; while more arrives than ring 0
	// commits it asks for longer (up to MaxRetryAfter), so that the nodes it defers come
	// back about as fast as it can take them rather than all at once again. A deferral is
	// not free — its round trip costs ring 0 and its broker a third of a commit or so (see
	// TestOverloadModelKeepsRing0Busy) — so a wait shorter than an overload lasts buys
	// deferrals, not commits.
	RetryAfter    time.Duration
	MaxRetryAfter time.Duration
}

func (o ingestOptions) withDefaults() ingestOptions {
	if o.Shards <= 0 {
		o.Shards = 4
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 2000
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Millisecond
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Gather <= 0 {
		o.Gather = 2 * time.Millisecond
	}
	if o.Queue <= 0 {
		o.Queue = 16384
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 128 << 20
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 900 * time.Millisecond
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 3 * time.Second
	}
	if o.MaxRetryAfter < o.RetryAfter {
		o.MaxRetryAfter = max(o.RetryAfter, 10*time.Second)
	}
	return o
}

// queued is an observation as it arrived, waiting for verification.
type queued struct {
	msg  *nats.Msg
	at   time.Time // when it arrived
	size int64     // what it holds in memory, roughly
}

// pending is a verified observation waiting for its batch to commit.
type pending struct {
	obs inventory.Record
	msg *nats.Msg
	at  time.Time // when it arrived
}

// ingester verifies observations arriving on the bus, commits them to the store in batches
// and acknowledges each to its node only after its batch committed.
type ingester struct {
	opts   ingestOptions
	store  *inventory.Store
	verify *bus.Verifier
	log    *slog.Logger
	seen   func(node enjin.NodeID, at time.Time)     // liveness: called after commit
	heard  func(node enjin.NodeID, at time.Time)     // liveness: a deferred node is alive
	byKey  func(userKey string) (enjin.NodeID, bool) // the VM whose bus user has this key
	learn  func(node enjin.NodeID)                   // registers a node another member joined, if any

	in     chan queued
	shards []chan pending
	seed   maphash.Seed

	queuedBytes atomic.Int64                         // what the queue holds, roughly (queued.size)
	admit       atomic.Int64                         // how many may wait for verification now; see repace
	subs        atomic.Pointer[[]*nats.Subscription] // whose callbacks queue: what waits for them waits too
	above       atomic.Int64                         // unix ns since when every batch taken waited past MaxWait (0: none)
	retryAfter  atomic.Int64                         // what a deferral asks for now (ns); see pace
	acked       atomic.Uint64

	committed atomic.Uint64
	failed    atomic.Uint64 // observations lost to a failed commit (not acknowledged)
	deferred  atomic.Uint64 // observations refused for now: what waits was at the bound

	ackDelay prometheus.Observer // arrival → acknowledgement; nil: not measured
}

func newIngester(opts ingestOptions, store *inventory.Store, v *bus.Verifier, log *slog.Logger, seen func(enjin.NodeID, time.Time)) *ingester {
	opts = opts.withDefaults()
	g := &ingester{opts: opts, store: store, verify: v, log: log, seen: seen,
		in: make(chan queued, opts.Queue), seed: maphash.MakeSeed()}
	g.retryAfter.Store(int64(opts.RetryAfter))
	// Until the first period has measured what it commits, ring 0 lets wait eight rounds of
	// its verification goroutines, not Queue: started under load, it commits a third of
	// what it will for a second or two, and a full Queue would wait past 2 s.
	g.admit.Store(g.rounds(8))
	for range opts.Shards {
		g.shards = append(g.shards, make(chan pending, opts.MaxBatch))
	}
	return g
}

// errOverloaded is the reason of an observation deferred: ring 0 has more than it can take.
var errOverloaded = errors.New("ring 0 is overloaded: send it again later")

// msgOverhead is what a message costs in memory beyond its subject, header and data.
const msgOverhead = 512

// handle is the bus subscription's callback: it only queues, or, what waits being at the
// bound, defers the observation at once — the node sends it again after RetryAfter.
func (g *ingester) handle(m *nats.Msg) {
	if g.admits(g.backlog()) {
		size := msgSize(m)
		if g.queuedBytes.Add(size) <= g.opts.QueueBytes {
			select {
			case g.in <- queued{msg: m, at: time.Now(), size: size}:
				return
			default:
			}
		}
		g.queuedBytes.Add(-size)
	}
	g.deferred.Add(1)
	wait := time.Duration(g.retryAfter.Load())
	bus.Defer(m, errOverloaded, wait)
	if node, ok := bus.Ring1ObsNode(m.Subject); ok && g.heard != nil {
		// Only the node's own credentials publish on its subject: it is alive, and told
		// to be quiet for up to 1½ the wait.
		g.heard(node, time.Now().Add(wait*3/2))
	}
}

// backlog is how many observations wait: for verification, in the queue and behind the
// subscriptions' callbacks (which a busy ring 0 may run late), and, verified, for their
// batch to commit (in the shards' channels, a batch's worth each).
func (g *ingester) backlog() int64 {
	n := len(g.in)
	for _, sh := range g.shards {
		n += len(sh)
	}
	if subs := g.subs.Load(); subs != nil {
		for _, s := range *subs {
			if p, _, err := s.Pending(); err == nil {
				n += p
			}
		}
	}
	return int64(n)
}

// msgSize is roughly what m holds in memory.
func msgSize(m *nats.Msg) int64 {
	n := msgOverhead + len(m.Subject) + len(m.Reply) + len(m.Data)
	for k, vs := range m.Header {
		n += len(k)
		for _, v := range vs {
			n += len(v)
		}
	}
	return int64(n)
}

// run verifies and commits until ctx ends; queued observations that were not committed are
// simply not acknowledged.
func (g *ingester) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range g.opts.Workers {
		wg.Go(func() { g.verifyLoop(ctx) }) // ends with ctx
	}
	var cw sync.WaitGroup
	for _, sh := range g.shards {
		cw.Go(func() { g.commitLoop(ctx, sh) }) // ends with ctx
	}
	cw.Go(func() { g.pace(ctx, time.Second) }) // ends with ctx
	wg.Wait()
	cw.Wait()
}

// verifyBatch is how many queued observations one verification takes at once.
const verifyBatch = 256

// gatherMin is how many observations a verification goroutine waits to gather (up to
// Gather) before it verifies: past it, a batch costs little more per signature.
const gatherMin = 32

func (g *ingester) verifyLoop(ctx context.Context) {
	qs := make([]queued, 0, verifyBatch)
	msgs := make([]*nats.Msg, 0, verifyBatch)
	items := make([]bus.Item, 0, verifyBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var ok bool
		if qs, ok = g.take(ctx, qs[:0], timer); !ok {
			return
		}
		msgs = msgs[:0]
		var size int64
		for _, q := range qs {
			msgs = append(msgs, q.msg)
			size += q.size
		}
		g.queuedBytes.Add(-size)
		items = g.check(msgs, items[:0])
		for i, it := range items {
			if it.Err != nil {
				continue
			}
			p := g.pending(msgs[i], it)
			p.at = qs[i].at
			sh := g.shards[g.shard(p.obs.Node)]
			for _, q := range append([]pending{p}, g.children(p)...) {
				select {
				case sh <- q: // children ride in their observer's shard, after it
				case <-ctx.Done():
					return
				}
			}
		}
		clear(qs)
	}
}

// take waits for a queued observation and takes what else is queued, up to a batch; with
// fewer than gatherMin it waits up to Gather for more, and notes how long the first waited
// (see noteWait). It returns false when ctx ends.
func (g *ingester) take(ctx context.Context, qs []queued, timer *time.Timer) ([]queued, bool) {
	qs, ok := g.gather(ctx, qs, timer)
	if len(qs) == 0 {
		return qs, ok
	}
	g.noteWait(time.Now(), qs[0].at)
	return qs, ok
}

// noteWait notes that a batch taken at now began with an observation that arrived at
// arrived. When every batch taken for MaxWait waited longer than MaxWait (a passing spike —
// a slow fsync — is not that), ring 0 commits less than admission counted on: it halves
// what it admits (at least a few batches) until the next period measures the rate again.
// Refusing everything until the queue had drained, as it once did, deferred most of the
// fleet within a second — the bench's storms of 60,000 deferrals a second — and left ring
// 0 idle while the nodes waited their retry-after.
func (g *ingester) noteWait(now, arrived time.Time) {
	switch {
	case now.Sub(arrived) <= g.opts.MaxWait:
		g.above.Store(0)
	case g.above.CompareAndSwap(0, now.UnixNano()):
	default:
		// One verification goroutine halves it; it is halved again if this goes on for
		// MaxWait more.
		if a := g.above.Load(); now.UnixNano()-a >= int64(g.opts.MaxWait) && g.above.CompareAndSwap(a, now.UnixNano()) {
			g.admit.Store(max(g.admit.Load()/2, g.rounds(4)))
		}
	}
}

func (g *ingester) gather(ctx context.Context, qs []queued, timer *time.Timer) ([]queued, bool) {
	select {
	case <-ctx.Done():
		return qs, false
	case q := <-g.in:
		qs = append(qs, q)
	}
	waiting := false
	defer timer.Stop()
	for len(qs) < verifyBatch {
		select {
		case q := <-g.in:
			qs = append(qs, q)
			continue
		default:
		}
		if len(qs) >= gatherMin {
			break
		}
		if !waiting {
			timer.Reset(g.opts.Gather)
			waiting = true
		}
		select {
		case q := <-g.in:
			qs = append(qs, q)
		case <-timer.C:
			return qs, true
		case <-ctx.Done():
			return qs, false
		}
	}
	return qs, true
}

// check verifies a batch of messages; each rejection is counted by the verifier and
// answered. Messages whose subject names no node get an Item with an error too.
func (g *ingester) check(msgs []*nats.Msg, items []bus.Item) []bus.Item {
	for _, m := range msgs {
		node, ok := bus.Ring1ObsNode(m.Subject)
		if !ok && g.byKey != nil { // a VM's own, named by its user key
			if _, key, kok := bus.R1FromObsKey(m.Subject); kok {
				node, _ = g.byKey(key)
			}
		} else if ok && g.learn != nil && !g.verify.Known(node) {
			g.learn(node)
		}
		items = append(items, bus.Item{Node: node, Header: m.Header, Payload: m.Data})
	}
	g.verify.VerifyBatch(items, time.Now())
	for i, it := range items {
		if it.Err != nil {
			bus.Refuse(msgs[i], it.Err)
		}
	}
	return items
}

// pending turns a verified message into an observation to store. The payload is stored as
// signed; only the state it claims is read out, for the node's row.
func (g *ingester) pending(m *nats.Msg, it bus.Item) pending {
	return pending{msg: m, obs: inventory.Record{SignedObservation: enjin.SignedObservation{Node: it.Node, Seq: it.Seal.Seq,
		TsNs: it.Seal.Ts, ReceivedAt: time.Now(), Signer: it.Seal.Signer, Sig: it.Seal.Sig, Payload: m.Data},
		State: claimedState(m.Data)}}
}

// children turns the app instances a ring 1 node reports in its observation into
// observations of them, signed by the node as their observer. Only payloads that mention
// children are decoded.
func (g *ingester) children(p pending) []pending {
	if !bytes.Contains(p.obs.Payload, []byte(`"children"`)) {
		return nil
	}
	var o enjin.Observation
	if json.Unmarshal(p.obs.Payload, &o) != nil {
		return nil
	}
	out := make([]pending, 0, len(o.Children))
	for _, c := range o.Children {
		if c.Node.Validate() != nil || c.Tenant.Validate() != nil {
			continue
		}
		q := p.obs
		q.Node, q.Observer, q.Tenant, q.App, q.State = c.Node, p.obs.Node, c.Tenant, c.App, c.State
		out = append(out, pending{obs: q, at: p.at})
	}
	return out
}

// claimedState finds the "state" a JSON observation claims without decoding all of it (a
// full decode costs more than the rest of storing it). Anything odd yields "".
func claimedState(p []byte) string {
	i := bytes.Index(p, []byte(`"state":"`))
	if i < 0 {
		return ""
	}
	rest := p[i+len(`"state":"`):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || j > 32 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return ""
	}
	return string(rest[:j])
}

func (g *ingester) shard(n enjin.NodeID) int {
	return int(maphash.String(g.seed, string(n)) % uint64(len(g.shards)))
}

func (g *ingester) commitLoop(ctx context.Context, in <-chan pending) {
	batch := make([]pending, 0, g.opts.MaxBatch)
	obs := make([]inventory.Record, 0, g.opts.MaxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-in:
			batch = append(batch, p)
			if len(batch) == 1 {
				timer.Reset(g.opts.MaxDelay)
			}
			if len(batch) < g.opts.MaxBatch {
				continue
			}
		case <-timer.C:
		}
		timer.Stop()
		if len(batch) == 0 {
			continue
		}
		obs = obs[:0]
		for _, p := range batch {
			obs = append(obs, p.obs)
		}
		if err := g.store.Ingest(ctx, obs); err != nil {
			g.failed.Add(uint64(len(batch)))
			if ctx.Err() == nil {
				g.log.Error("ingest batch failed; not acknowledged", "n", len(batch), "err", err)
			}
		} else {
			g.committed.Add(uint64(len(batch)))
			now := time.Now()
			for _, p := range batch {
				if p.msg != nil { // children have no message of their own
					g.acked.Add(1)
					bus.Ack(p.msg)
					if g.ackDelay != nil {
						g.ackDelay.Observe(now.Sub(p.at).Seconds())
					}
					g.seen(p.obs.Node, p.obs.ReceivedAt)
				}
			}
		}
		clear(batch)
		batch = batch[:0]
	}
}
