package ring0

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
)

// heardNote is what one ring 0 member tells the others it heard since its last note: nodes
// whose observations it committed (Seen, at the earliest commit of the note) and nodes it
// deferred, alive until a time (Heard, until the earliest of those times). Ingest is spread
// over the members, so each hears only part of every node's heartbeats; whichever leads
// judges on what all of them heard.
type heardNote struct {
	Member string         `json:"member"`
	At     int64          `json:"at"` // unix ns
	Seen   []enjin.NodeID `json:"seen,omitempty"`
	Until  int64          `json:"until,omitempty"` // unix ns
	Heard  []enjin.NodeID `json:"heard,omitempty"`
	// Changed are nodes whose attestation key this member registered, replaced or forgot
	// (joined, rejoined, decommissioned): the others read it again from the store.
	Changed []enjin.NodeID `json:"changed,omitempty"`
}

// maxNoteNodes bounds the nodes of one note, well within the bus's largest message.
const maxNoteNodes = 8192

// hearing collects what this member heard until it is shared.
type hearing struct {
	mu    sync.Mutex
	seen  earliest       // committed, at the earliest commit
	heard earliest       // deferred, alive until the earliest end of a wait
	keys  []enjin.NodeID // nodes whose keys changed
}

// earliest is a set of nodes and the earliest time noted with any of them.
type earliest struct {
	nodes map[enjin.NodeID]struct{}
	at    time.Time
}

func (e *earliest) add(node enjin.NodeID, at time.Time) {
	if len(e.nodes) == 0 || at.Before(e.at) {
		e.at = at
	}
	if e.nodes == nil {
		e.nodes = map[enjin.NodeID]struct{}{}
	}
	e.nodes[node] = struct{}{}
}

func (h *hearing) changed(node enjin.NodeID) {
	h.mu.Lock()
	h.keys = append(h.keys, node)
	h.mu.Unlock()
}

func (h *hearing) saw(node enjin.NodeID, at time.Time) {
	h.mu.Lock()
	h.seen.add(node, at)
	h.mu.Unlock()
}

func (h *hearing) deferred(node enjin.NodeID, until time.Time) {
	h.mu.Lock()
	h.heard.add(node, until)
	h.mu.Unlock()
}

// take returns what was heard since the last take, as notes of at most maxNoteNodes each.
func (h *hearing) take(member string) []heardNote {
	h.mu.Lock()
	seen, at, heard, until, changed := h.seen.nodes, h.seen.at, h.heard.nodes, h.heard.at, h.keys
	h.seen, h.heard, h.keys = earliest{}, earliest{}, nil
	h.mu.Unlock()
	var notes []heardNote
	note := heardNote{Member: member, At: at.UnixNano(), Until: until.UnixNano()}
	flush := func() {
		if len(note.Seen)+len(note.Heard) > 0 {
			notes = append(notes, note)
		}
		note = heardNote{Member: member, At: at.UnixNano(), Until: until.UnixNano()}
	}
	for n := range seen {
		if note.Seen = append(note.Seen, n); len(note.Seen) == maxNoteNodes {
			flush()
		}
	}
	for n := range heard {
		if note.Heard = append(note.Heard, n); len(note.Seen)+len(note.Heard) >= maxNoteNodes {
			flush()
		}
	}
	for len(changed) > 0 {
		n := min(len(changed), maxNoteNodes)
		notes = append(notes, heardNote{Member: member, Changed: changed[:n]})
		changed = changed[n:]
	}
	flush()
	return notes
}

// share tells the other members what this one heard, every period, until ctx ends; and
// feeds this member's judge what they tell it.
func (r *Ring0) share(ctx context.Context, period time.Duration) error {
	sub, err := r.nc.Subscribe(bus.Ring0Seen, func(m *nats.Msg) {
		var n heardNote
		if json.Unmarshal(m.Data, &n) != nil || n.Member == r.member {
			return
		}
		at, until := time.Unix(0, n.At), time.Unix(0, n.Until)
		for _, id := range n.Seen {
			r.judge.seen(id, at)
		}
		for _, id := range n.Heard {
			r.judge.heard(id, until)
		}
		for _, id := range n.Changed {
			r.reload(id)
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, n := range r.hearing.take(r.member) {
			if err := bus.Publish(r.nc, bus.Ring0Seen, n); err != nil && ctx.Err() == nil {
				r.log.Warn("cannot share what this member heard", "err", err)
			}
		}
	}
}

// keysChanged tells the other members, if any, that node's attestation key changed here.
func (r *Ring0) keysChanged(node enjin.NodeID) {
	if r.cfg.Cluster != nil {
		r.hearing.changed(node)
	}
}

// learnAgain is how long a node found in no member's registry is not looked up again.
const learnAgain = 5 * time.Second

// learn registers node's attestation key from the store, if another member registered it:
// each member's verifier knows the nodes it loaded at its start and those joined through it.
// A node the store does not know either is not looked up again for learnAgain (only a
// node's own credential publishes on its subject, so the lookups are the cluster's nodes).
func (r *Ring0) learn(node enjin.NodeID) {
	now := time.Now()
	r.learnMu.Lock()
	if until, ok := r.unknown[node]; ok && now.Before(until) {
		r.learnMu.Unlock()
		return
	}
	if len(r.unknown) >= 4096 {
		clear(r.unknown)
	}
	r.unknown[node] = now.Add(learnAgain)
	r.learnMu.Unlock()
	if r.reload(node) {
		r.learnMu.Lock()
		delete(r.unknown, node)
		r.learnMu.Unlock()
	}
}

// reload reads node's attestation key from the store again: registered if it has one,
// forgotten if it has none (decommissioned). It reports whether node is registered now.
func (r *Ring0) reload(node enjin.NodeID) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	k, ok, err := r.store.NodeKeyOf(ctx, node)
	switch {
	case err != nil:
		r.log.Warn("cannot read a node's key", "node", node, "err", err)
		return false
	case !ok:
		r.verify.Forget(node)
		r.judge.forget(node)
		return false
	}
	if err := r.verify.Register(node, k.AttestPub, k.LastSeq); err != nil {
		r.log.Warn("node with an unusable attestation key", "node", node, "err", err)
		return false
	}
	r.verify.SetLatest(node, k.LastSeq, k.LastSig)
	return true
}
