package ring0

import (
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
	seen   func(node rings.NodeID, at time.Time) // liveness: called after commit

	in     chan *nats.Msg
	shards []chan pending
	seed   maphash.Seed

	committed atomic.Uint64
	failed    atomic.Uint64 // observations lost to a failed commit (not acknowledged)
}

func newIngester(opts ingestOptions, store *inventory.Store, v *bus.Verifier, log *slog.Logger, seen func(rings.NodeID, time.Time)) *ingester {
	opts = opts.withDefaults()
	g := &ingester{opts: opts, store: store, verify: v, log: log, seen: seen,
		in: make(chan *nats.Msg, 65536), seed: maphash.MakeSeed()}
	for range opts.Shards {
		g.shards = append(g.shards, make(chan pending, 4*opts.MaxBatch))
	}
	return g
}

// handle is the bus subscription's callback: it only queues.
func (g *ingester) handle(m *nats.Msg) { g.in <- m }

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

func (g *ingester) verifyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-g.in:
			if p, ok := g.check(m); ok {
				select {
				case g.shards[g.shard(p.obs.Node)] <- p:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

// check verifies one message; a rejection is counted by the verifier and answered.
func (g *ingester) check(m *nats.Msg) (pending, bool) {
	now := time.Now()
	node, ok := bus.R0FromRing1ObsNode(m.Subject)
	if !ok {
		bus.Refuse(m, errors.New("subject names no node"))
		return pending{}, false
	}
	sl, err := g.verify.Verify(node, m.Header, m.Data, now)
	if err != nil {
		bus.Refuse(m, err)
		return pending{}, false
	}
	var claim struct {
		Node  rings.NodeID    `json:"node"`
		State rings.NodeState `json:"state"`
	}
	if err := json.Unmarshal(m.Data, &claim); err != nil || claim.Node != node {
		bus.Refuse(m, errors.New("payload is not an observation of this node"))
		return pending{}, false
	}
	return pending{msg: m, obs: inventory.Observation{Node: node, Seq: sl.Seq, TsNs: sl.Ts, Received: now,
		Signer: sl.Signer, Sig: sl.Sig, Payload: m.Data, State: string(claim.State)}}, true
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
				bus.Ack(p.msg)
				g.seen(p.obs.Node, p.obs.Received)
			}
		}
		clear(batch)
		batch = batch[:0]
	}
}
