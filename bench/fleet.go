package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
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
	resigned                 int64            // sends signed as sent, not ahead (see resignAfter)
	statuses                 int64            // the broker answered, not ring 0 (no responders)
	ackedInWindow            int64            // acknowledged while load was offered
	lat, e2e                 []time.Duration  // accepted send → ack, due → ack
	span                     time.Duration    // from the first due to the last ack
	catchUp                  time.Duration    // from the end of the offered load to the last ack
	reasons                  map[string]int64 // of refusals and deferrals, by reason
	ackedNodes               []string         // every acknowledged send (copies too), with …
	ackedSeqs                []int64          // … its seq
}

// simNode sends its heartbeats as a ring 1 node does: one at a time, the next only once
// the last was acknowledged, after a deferral nothing until the wait asked for (jittered
// ½–1½×) has passed, and without an answer within a heartbeat the same one again.
type simNode struct {
	mu       sync.Mutex
	next     int         // index in msgs of its oldest heartbeat not yet acknowledged
	inflight bool        // next is on its way
	waiting  bool        // ring 0 asked to wait
	sends    int         // sends of next so far: an answer to an older one is not awaited
	seals    uint64      // different seals of next sent so far (the one signed ahead counts once)
	late     nats.Header // next's latest seal signed as sent (see seal)
	lateAt   time.Time   // when late was signed
	// unanswered sends next again if no answer comes within ackTimeout; stopped when one
	// does, so that it costs no goroutine then: at 45,000 sends a second the fleet spent a
	// third of its CPU on the goroutines of timers that found their send answered, and its
	// CPU is the one ring 0 is measured on.
	unanswered *time.Timer
}

// resignAfter is how late a heartbeat signed ahead may be sent as signed: later, its node
// signs it as it sends, as a ring 1 node always does, rather than have it refused for a
// timestamp outside ring 0's window. It signs it under the seq it was signed ahead with, and
// sends that same seal again while it is fresh (a copy of one stored is acknowledged again);
// signed again later, the seq goes one up each time (the first copy may have been stored).
// The node's later heartbeats, signed ahead under higher seqs, go as signed unless late too.
// The margin to the window is for the wait in ring 0's queue, which admission bounds to
// about a second.
const resignAfter = bus.DefaultWindow - 5*time.Second

// ackTimeout is how long a simulated node waits for an answer before it sends again, as a
// ring 1 node does at a 5 s heartbeat.
const ackTimeout = 5 * time.Second

// fleet drives simulated nodes: message k belongs to node k mod len(nodes).
type fleet struct {
	msgs     []signedMsg
	signers  []*simSigner // of the nodes, by index
	nodes    []simNode
	ncs      []*nats.Conn
	due      func(k int) time.Time
	produced atomic.Int64 // messages due so far

	sent                              []atomic.Int64 // unix ns of the last send of each
	lat, e2e                          []time.Duration
	acked, refused, deferred, lastAck atomic.Int64 // acked and refused count each message once
	timeouts                          atomic.Int64
	resigned                          atomic.Int64 // sends signed as sent: the fleet's CPU, not ring 0's
	statuses                          atomic.Int64 // the broker's own answers (no responders)
	sendq                             chan int     // next heartbeats of nodes just answered; see senders
	mu                                sync.Mutex
	reasons                           map[string]int64 // of refusals and deferrals
	ackedNodes                        []string         // every acknowledged send, copies too:
	ackedSeqs                         []int64          // each must be in the store
}

// seal is the seal to send m, the node's next, with at now (due at due): the one signed ahead
// unless m is later than resignAfter, else one signed as sent (signed says it was signed
// now), under a seq no seal of m that went out had. The caller holds n.mu.
func (n *simNode) seal(m signedMsg, due, now time.Time, s *simSigner) (hdr nats.Header, signed bool) {
	switch {
	case now.Sub(due) <= resignAfter:
		n.seals = max(n.seals, 1) // on time comes before late: this is the first
		return m.hdr, false
	case n.late != nil && now.Sub(n.lateAt) <= resignAfter:
		return n.late, false
	}
	n.late, n.lateAt = s.signAs(m.data, now, m.seq+n.seals), now
	n.seals++
	return n.late, true
}

// send sends message k, its node's next, and sends it again if no answer comes in time.
func (f *fleet) send(k int) {
	n := &f.nodes[k%len(f.nodes)]
	c, m, now := k%len(f.ncs), f.msgs[k], time.Now()
	n.mu.Lock()
	n.sends++
	try := n.sends
	hdr, signed := n.seal(m, f.due(k), now, f.signers[k%len(f.nodes)])
	if signed {
		f.resigned.Add(1)
	}
	n.unanswered = time.AfterFunc(ackTimeout, func() { // before the send: its answer stops it
		n.mu.Lock()
		again := n.inflight && n.next == k && n.sends == try
		n.mu.Unlock()
		if again {
			f.timeouts.Add(1)
			f.send(k)
		}
	})
	n.mu.Unlock()
	f.sent[k].Store(now.UnixNano())
	// Which send an answer is to; each send has a reply subject of its own, as a node's
	// request does (the broker lets ring 0 answer a reply subject once).
	reply := replySubject(c, k, hdr.Get(bus.HdrSeq), try)
	_ = f.ncs[c].PublishMsg(&nats.Msg{Subject: bus.Ring1Obs(m.node), Reply: reply, Header: hdr, Data: m.data})
}

// replySubject is _INBOX.fleet.<conn>.<k>.<seq>.<try>, the reply subject of a send, built
// without fmt: at 45,000 sends a second fmt.Sprintf was 8 % of the fleet's CPU, which it
// shares with ring 0.
func replySubject(conn, k int, seq string, try int) string {
	b := make([]byte, 0, 64)
	b = append(b, "_INBOX.fleet."...)
	b = strconv.AppendInt(b, int64(conn), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, '.')
	b = append(b, seq...)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(try), 10)
	return string(b)
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

// answer handles ring 0's answer to the send of message k sealed with seq. An answer to an
// earlier send of a message its node is done with only counts (an acknowledgement's copy
// must be in the store too).
func (f *fleet) answer(k int, seq int64, m *nats.Msg) {
	now := time.Now().UnixNano()
	n := &f.nodes[k%len(f.nodes)]
	reason, retry := m.Header.Get(bus.HdrError), m.Header.Get(bus.HdrRetryAfter)
	if reason == "" && retry == "" {
		f.mu.Lock()
		f.ackedNodes, f.ackedSeqs = append(f.ackedNodes, string(f.msgs[k].node)), append(f.ackedSeqs, seq)
		f.mu.Unlock()
	} else {
		if _, why, ok := strings.Cut(reason, " rejected: "); ok {
			reason = "rejected: " + why // one count per reason, not per node
		}
		f.mu.Lock()
		f.reasons[reason]++
		f.mu.Unlock()
	}
	n.mu.Lock()
	if n.next != k { // done with it already
		n.mu.Unlock()
		return
	}
	if n.unanswered != nil {
		n.unanswered.Stop() // answered: an earlier send's answer is as good
		n.unanswered = nil
	}
	if ms, _ := strconv.Atoi(retry); ms > 0 {
		f.deferred.Add(1)
		n.inflight, n.waiting = false, true
		n.mu.Unlock()
		wait := time.Duration(ms) * time.Millisecond
		time.AfterFunc(wait/2+rand.N(wait), func() {
			n.mu.Lock()
			again := n.waiting && n.next == k
			n.waiting, n.inflight = false, n.inflight || again
			n.mu.Unlock()
			if again {
				f.send(k)
			}
		})
		return
	}
	// Acknowledged (a copy sent again is acknowledged again once the first is stored), or
	// refused for good: a replay, when the member that stored the first has restarted since
	// and no longer knows its signature.
	if reason != "" {
		f.refused.Add(1)
	} else {
		f.lat[k] = time.Duration(now - f.sent[k].Load())
		f.e2e[k] = time.Duration(now - f.due(k).UnixNano())
		f.lastAck.Store(now)
		f.acked.Add(1)
	}
	n.sends, n.waiting = 0, false
	n.seals, n.late = 0, nil
	n.next = k + len(f.nodes)
	more := n.next < int(f.produced.Load())
	n.inflight = more
	n.mu.Unlock()
	if more {
		f.sendq <- n.next // signed and sent by a sender, not by the callback: answers wait for none
	}
}

// offer makes msgs due at rate from t0; nodes send them over conns connections (spread over
// the brokers at natsURLs) as ring 1 nodes would, and the answers are tallied; every 5 s a
// line of progress says how far it got.
func offer(ctx context.Context, chain *keys.Chain, natsURLs []string, msgs []signedMsg, signers []*simSigner, rate float64, t0 time.Time, conns int, progress func(string, ...any)) (offerResult, error) {
	iss, err := broker.IssuerFor(chain, keys.RING1)
	if err != nil {
		return offerResult{}, err
	}
	cr, err := iss.Mint(keys.UserRequest{Name: "fleet", Perms: keys.Permissions{PubAllow: []string{"ring1.*.obs"}, SubAllow: []string{"_INBOX.fleet.>"}}}, time.Now())
	if err != nil {
		return offerResult{}, err
	}
	f := &fleet{msgs: msgs, signers: signers, reasons: map[string]int64{}, nodes: make([]simNode, len(signers)), sent: make([]atomic.Int64, len(msgs)),
		lat: make([]time.Duration, len(msgs)), e2e: make([]time.Duration, len(msgs)),
		due: func(k int) time.Time { return t0.Add(time.Duration(float64(k) / rate * float64(time.Second))) }}
	for i := range f.nodes {
		f.nodes[i].next = i
	}
	f.sendq = make(chan int, len(f.nodes)) // a node has one heartbeat in flight at most
	stopSend := make(chan struct{})
	defer close(stopSend)
	for range runtime.GOMAXPROCS(0) {
		go func() { // ends when offer returns
			for {
				select {
				case k := <-f.sendq:
					f.send(k)
				case <-stopSend:
					return
				}
			}
		}()
	}
	defer func() {
		for _, nc := range f.ncs {
			nc.Close()
		}
	}()
	if err := f.connect(natsURLs, cr, conns); err != nil {
		return offerResult{}, err
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
			progress("%.0fs: %d due, %d acked, %d deferred, %d refused, %d unanswered",
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
	inWindow := f.acked.Load()
	deadline := end.Add(120 * time.Second) // deferred nodes may be told to wait 20 s (and 1½ that, jittered)
	for f.acked.Load()+f.refused.Load() < int64(len(msgs)) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	res := f.result(t0, end, inWindow)
	if res.acked == 0 {
		return res, errors.New("no observation was acknowledged")
	}
	return res, nil
}

// connect opens conns connections, spread over the brokers at natsURLs, each taking the
// answers to the heartbeats sent over it.
func (f *fleet) connect(natsURLs []string, cr *keys.Creds, conns int) error {
	for c := range conns {
		nc, err := bus.Connect(natsURLs[c%len(natsURLs)], cr, nats.ReconnectBufSize(64<<20))
		if err != nil {
			return err
		}
		f.ncs = append(f.ncs, nc)
		prefix := fmt.Sprintf("_INBOX.fleet.%d.", c)
		_, err = nc.Subscribe(prefix+">", func(m *nats.Msg) {
			ks, rest, _ := strings.Cut(m.Subject[len(prefix):], ".")
			seqs, _, _ := strings.Cut(rest, ".")
			k, err1 := strconv.Atoi(ks)
			seq, err2 := strconv.ParseInt(seqs, 10, 64)
			// A status from the broker ("503": nobody subscribed, as while a restarted ring 0
			// member has not subscribed yet) is no answer from ring 0: the send times out and
			// goes again, as a node's request does.
			if m.Header.Get("Status") != "" {
				f.statuses.Add(1)
				return
			}
			if err1 == nil && err2 == nil && k >= 0 && k < len(f.msgs) {
				f.answer(k, seq, m)
			}
		})
		if err != nil {
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// result tallies what the fleet saw of the load offered from t0 to end (inWindow of it
// acknowledged by then), once it has waited for the answers.
func (f *fleet) result(t0, end time.Time, inWindow int64) offerResult {
	res := offerResult{ackedInWindow: inWindow}
	res.acked, res.refused, res.deferred, res.timeouts = f.acked.Load(), f.refused.Load(), f.deferred.Load(), f.timeouts.Load()
	res.statuses, res.resigned = f.statuses.Load(), f.resigned.Load()
	f.mu.Lock()
	res.reasons = maps.Clone(f.reasons)
	res.ackedNodes, res.ackedSeqs = f.ackedNodes, f.ackedSeqs
	f.mu.Unlock()
	res.span = time.Duration(f.lastAck.Load() - t0.UnixNano())
	res.catchUp = max(0, time.Duration(f.lastAck.Load()-end.UnixNano()))
	for k := range f.msgs {
		if f.lat[k] > 0 {
			res.lat = append(res.lat, f.lat[k])
			res.e2e = append(res.e2e, f.e2e[k])
		}
	}
	return res
}
