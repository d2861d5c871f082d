package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"enjin/bus"
	"enjin/bus/broker"
	"enjin/keys"
)

type offerResult struct {
	acked, refused, deferred int64
	timeouts                 int64            // sends not answered in time, sent again
	ackedInWindow            int64            // acknowledged while load was offered
	lat, e2e                 []time.Duration  // accepted send → ack, due → ack
	span                     time.Duration    // from the first due to the last ack
	catchUp                  time.Duration    // from the end of the offered load to the last ack
	reasons                  map[string]int64 // of refusals and deferrals, by reason
}

// simNode sends its heartbeats as a ring 1 node does: one at a time, the next only once
// the last was acknowledged, after a deferral nothing until the wait asked for (jittered
// ½–1½×) has passed, and without an answer within a heartbeat the same one again.
type simNode struct {
	mu       sync.Mutex
	next     int  // index in msgs of its oldest heartbeat not yet acknowledged
	inflight bool // next is on its way
	waiting  bool // ring 0 asked to wait
	sends    int  // sends of next so far: an answer to an older one is not awaited
}

// ackTimeout is how long a simulated node waits for an answer before it sends again, as a
// ring 1 node does at a 5 s heartbeat.
const ackTimeout = 5 * time.Second

// fleet drives simulated nodes: message k belongs to node k mod len(nodes).
type fleet struct {
	msgs     []signedMsg
	nodes    []simNode
	ncs      []*nats.Conn
	due      func(k int) time.Time
	produced atomic.Int64 // messages due so far

	sent                              []atomic.Int64 // unix ns of the last send of each
	lat, e2e                          []time.Duration
	acked, refused, deferred, lastAck atomic.Int64
	timeouts                          atomic.Int64
	reasonMu                          sync.Mutex
	reasons                           map[string]int64 // of refusals and deferrals
}

// send sends message k, its node's next, and sends it again if no answer comes in time.
func (f *fleet) send(k int) {
	n := &f.nodes[k%len(f.nodes)]
	n.mu.Lock()
	n.sends++
	try := n.sends
	n.mu.Unlock()
	c, m := k%len(f.ncs), f.msgs[k]
	f.sent[k].Store(time.Now().UnixNano())
	_ = f.ncs[c].PublishMsg(&nats.Msg{Subject: bus.Ring1Obs(m.node), Reply: fmt.Sprintf("_INBOX.fleet.%d.%d", c, k), Header: m.hdr, Data: m.data})
	time.AfterFunc(ackTimeout, func() {
		n.mu.Lock()
		again := n.inflight && n.next == k && n.sends == try
		n.mu.Unlock()
		if again {
			f.timeouts.Add(1)
			f.send(k)
		}
	})
}

// produce makes message k due: its node sends it unless it is busy with older ones.
func (f *fleet) produce(k int) {
	f.produced.Store(int64(k + 1)) // first: an answer under the lock then sees it due
	n := &f.nodes[k%len(f.nodes)]
	n.mu.Lock()
	idle := !n.inflight && !n.waiting && n.next == k
	n.inflight = n.inflight || idle
	n.mu.Unlock()
	if idle {
		f.send(k)
	}
}

// answer handles ring 0's answer to message k.
func (f *fleet) answer(k int, m *nats.Msg) {
	now := time.Now().UnixNano()
	n := &f.nodes[k%len(f.nodes)]
	if reason := m.Header.Get(bus.HdrError); reason != "" || m.Header.Get(bus.HdrRetryAfter) != "" {
		f.reasonMu.Lock()
		f.reasons[reason]++
		f.reasonMu.Unlock()
		if ms, _ := strconv.Atoi(m.Header.Get(bus.HdrRetryAfter)); ms > 0 {
			f.deferred.Add(1)
			n.mu.Lock()
			n.inflight, n.waiting = false, true
			n.mu.Unlock()
			wait := time.Duration(ms) * time.Millisecond
			time.AfterFunc(wait/2+rand.N(wait), func() {
				n.mu.Lock()
				n.waiting, n.inflight = false, true
				n.mu.Unlock()
				f.send(k)
			})
			return
		}
		f.refused.Add(1)
	} else {
		f.lat[k] = time.Duration(now - f.sent[k].Load())
		f.e2e[k] = time.Duration(now - f.due(k).UnixNano())
		f.lastAck.Store(now)
		f.acked.Add(1)
	}
	n.mu.Lock()
	if n.next != k { // an answer to a send timed out and answered since
		n.mu.Unlock()
		return
	}
	n.sends = 0
	n.next = k + len(f.nodes)
	more := n.next < int(f.produced.Load())
	n.inflight = more
	n.mu.Unlock()
	if more {
		f.send(n.next)
	}
}

// offer makes msgs due at rate from t0; nodes send them over conns connections as ring 1
// nodes would, and the answers are tallied.
func offer(ctx context.Context, chain *keys.Chain, natsURL string, msgs []signedMsg, nodes int, rate float64, t0 time.Time, conns int) (offerResult, error) {
	iss, err := broker.IssuerFor(chain, keys.RING1)
	if err != nil {
		return offerResult{}, err
	}
	cr, err := iss.Mint(keys.UserRequest{Name: "fleet", Perms: keys.Permissions{PubAllow: []string{"ring1.*.obs"}, SubAllow: []string{"_INBOX.fleet.>"}}}, time.Now())
	if err != nil {
		return offerResult{}, err
	}
	f := &fleet{msgs: msgs, reasons: map[string]int64{}, nodes: make([]simNode, nodes), sent: make([]atomic.Int64, len(msgs)),
		lat: make([]time.Duration, len(msgs)), e2e: make([]time.Duration, len(msgs)),
		due: func(k int) time.Time { return t0.Add(time.Duration(float64(k) / rate * float64(time.Second))) }}
	for i := range f.nodes {
		f.nodes[i].next = i
	}
	defer func() {
		for _, nc := range f.ncs {
			nc.Close()
		}
	}()
	for c := range conns {
		nc, err := bus.Connect(natsURL, cr, nats.ReconnectBufSize(64<<20))
		if err != nil {
			return offerResult{}, err
		}
		f.ncs = append(f.ncs, nc)
		prefix := fmt.Sprintf("_INBOX.fleet.%d.", c)
		_, err = nc.Subscribe(prefix+">", func(m *nats.Msg) {
			if k, err := strconv.Atoi(m.Subject[len(prefix):]); err == nil && k >= 0 && k < len(msgs) {
				f.answer(k, m)
			}
		})
		if err != nil {
			return offerResult{}, err
		}
		if err := nc.Flush(); err != nil {
			return offerResult{}, err
		}
	}
	time.Sleep(time.Until(t0))
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() { // ends with offer
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(5 * time.Second):
			}
			fmt.Fprintf(os.Stderr, "bench ingest: %.0fs: %d due, %d acked, %d deferred, %d refused, %d unanswered\n",
				time.Since(t0).Seconds(), f.produced.Load(), f.acked.Load(), f.deferred.Load(), f.refused.Load(), f.timeouts.Load())
		}
	}()
	for k := range msgs {
		if d := time.Until(f.due(k)); d > time.Millisecond {
			time.Sleep(d)
		}
		f.produce(k)
	}
	end := time.Now()
	res := offerResult{ackedInWindow: f.acked.Load()}
	deadline := end.Add(60 * time.Second)
	for f.acked.Load()+f.refused.Load() < int64(len(msgs)) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	res.acked, res.refused, res.deferred, res.timeouts = f.acked.Load(), f.refused.Load(), f.deferred.Load(), f.timeouts.Load()
	f.reasonMu.Lock()
	res.reasons = maps.Clone(f.reasons)
	f.reasonMu.Unlock()
	res.span = time.Duration(f.lastAck.Load() - t0.UnixNano())
	res.catchUp = max(0, time.Duration(f.lastAck.Load()-end.UnixNano()))
	for k := range msgs {
		if f.lat[k] > 0 {
			res.lat = append(res.lat, f.lat[k])
			res.e2e = append(res.e2e, f.e2e[k])
		}
	}
	if res.acked == 0 {
		return res, errors.New("no observation was acknowledged")
	}
	return res, nil
}
