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

	"enjin/bus"
	"enjin/rings"
	"enjin/services/inventory"
)

// ingestOptions tune the pipeline from the bus to the store.
type ingestOptions struct {
	Shards   int           // batches committed in parallel; a node always lands in the same shard
	MaxBatch int           // observations per transaction
	MaxDelay time.Duration // how long a batch may wait to fill
	Workers  int           // verification goroutines
	// Queue bounds the observations waiting for verification; one more is refused at once
	// for now (bus.Defer, after RetryAfter) rather than waited for, so what ring 0 holds,
	// and so its memory, stays bounded however many nodes send.
	Queue      int
	RetryAfter time.Duration
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
	if o.Queue <= 0 {
		o.Queue = 65536
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	return o
}

// pending is a verified observation waiting for its batch to commit.
type pending struct {
	obs inventory.Observation
	msg *nats.Msg
}

// ingester verifies observations arriving on the bus, commits them to the store in batches
// and acknowledges each to its node only after its batch committed.
type ingester struct {
	opts   ingestOptions
	store  *inventory.Store
	verify *bus.Verifier
	log    *slog.Logger
	seen   func(node rings.NodeID, at time.Time)     // liveness: called after commit
	byKey  func(userKey string) (rings.NodeID, bool) // the VM whose bus user has this key

	in     chan *nats.Msg
	shards []chan pending
	seed   maphash.Seed

	committed atomic.Uint64
	failed    atomic.Uint64 // observations lost to a failed commit (not acknowledged)
	deferred  atomic.Uint64 // observations refused for now: the queue was full
}

func newIngester(opts ingestOptions, store *inventory.Store, v *bus.Verifier, log *slog.Logger, seen func(rings.NodeID, time.Time)) *ingester {
	opts = opts.withDefaults()
	g := &ingester{opts: opts, store: store, verify: v, log: log, seen: seen,
		in: make(chan *nats.Msg, opts.Queue), seed: maphash.MakeSeed()}
	for range opts.Shards {
		g.shards = append(g.shards, make(chan pending, 4*opts.MaxBatch))
	}
	return g
}

// errOverloaded is the reason of an observation deferred: ring 0 has more than it can take.
var errOverloaded = errors.New("ring 0 is overloaded: send it again later")

// handle is the bus subscription's callback: it only queues, or, the queue being full,
// defers the observation at once — the node sends it again after RetryAfter.
func (g *ingester) handle(m *nats.Msg) {
	select {
	case g.in <- m:
	default:
		g.deferred.Add(1)
		bus.Defer(m, errOverloaded, g.opts.RetryAfter)
	}
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
	wg.Wait()
	cw.Wait()
}

// verifyBatch is how many queued observations one verification takes at once.
const verifyBatch = 256

func (g *ingester) verifyLoop(ctx context.Context) {
	msgs := make([]*nats.Msg, 0, verifyBatch)
	items := make([]bus.Item, 0, verifyBatch)
	for {
		msgs = msgs[:0]
		select {
		case <-ctx.Done():
			return
		case m := <-g.in:
			msgs = append(msgs, m)
		}
	fill:
		for len(msgs) < verifyBatch {
			select {
			case m := <-g.in:
				msgs = append(msgs, m)
			default:
				break fill
			}
		}
		items = g.check(msgs, items[:0])
		for i, it := range items {
			if it.Err != nil {
				continue
			}
			p := g.pending(msgs[i], it)
			sh := g.shards[g.shard(p.obs.Node)]
			for _, q := range append([]pending{p}, g.children(p)...) {
				select {
				case sh <- q: // children ride in their observer's shard, after it
				case <-ctx.Done():
					return
				}
			}
		}
	}
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
	return pending{msg: m, obs: inventory.Observation{Node: it.Node, Seq: it.Seal.Seq, TsNs: it.Seal.Ts, Received: time.Now(),
		Signer: it.Seal.Signer, Sig: it.Seal.Sig, Payload: m.Data, State: claimedState(m.Data)}}
}

// children turns the app instances a ring 1 node reports in its observation into
// observations of them, signed by the node as their observer. Only payloads that mention
// children are decoded.
func (g *ingester) children(p pending) []pending {
	if !bytes.Contains(p.obs.Payload, []byte(`"children"`)) {
		return nil
	}
	var o rings.Observation
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
		out = append(out, pending{obs: q})
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

func (g *ingester) shard(n rings.NodeID) int {
	return int(maphash.String(g.seed, string(n)) % uint64(len(g.shards)))
}

func (g *ingester) commitLoop(ctx context.Context, in <-chan pending) {
	batch := make([]pending, 0, g.opts.MaxBatch)
	obs := make([]inventory.Observation, 0, g.opts.MaxBatch)
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
			for _, p := range batch {
				if p.msg != nil { // children have no message of their own
					bus.Ack(p.msg)
					g.seen(p.obs.Node, p.obs.Received)
				}
			}
		}
		clear(batch)
		batch = batch[:0]
	}
}
