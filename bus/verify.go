package bus

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hdevalence/ed25519consensus"
	"github.com/nats-io/nats.go"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"

	"enjin"
	"enjin/keys"
)

// Reason says why the verifier rejected an observation.
type Reason int

// Rejection reasons, in the order the verifier checks them.
const (
	Malformed     Reason = iota // missing or badly formed seal headers, or an oversized payload
	UnknownNode                 // no attestation key registered for the node
	WrongSigner                 // Obs-Signer is not the key registered for the node
	OutsideWindow               // |now − ts| exceeds the window
	Replay                      // seq not above the node's high-water mark (nor its latest sent again)
	BadSignature                // the signature does not cover these bytes
	numReasons
)

var reasonNames = [numReasons]string{"malformed", "unknown-node", "wrong-signer", "outside-window", "replay", "bad-signature"}

func (r Reason) String() string {
	if r >= 0 && r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// Reasons lists every rejection reason.
func Reasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}

// RejectError is the verifier's refusal of one observation.
type RejectError struct {
	Node   enjin.NodeID
	Reason Reason
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("bus: observation from %s rejected: %s", e.Node, e.Reason)
}

// DefaultWindow is how far an observation's timestamp may be from the verifier's clock.
const DefaultWindow = 30 * time.Second

// Verifier checks signed observations: the signer is the attestation key registered for the
// node named by the (server-enforced) subject, the timestamp is within the window, the seq is
// above the node's high-water mark and the signature covers the canonical bytes. The one
// exception to the mark is the node's latest accepted observation sent again, byte for byte
// (its answer was lost or late): it passes as a duplicate, for the caller to store
// idempotently and acknowledge again rather than tell the node that what it sent is a
// replay. It counts what it accepts and why it rejects. It is safe for concurrent use.
type Verifier struct {
	window time.Duration

	mu    sync.RWMutex
	nodes map[enjin.NodeID]*nodeState

	accepted   atomic.Uint64
	duplicates atomic.Uint64
	rejected   [numReasons]atomic.Uint64
}

type nodeState struct {
	signer string
	pub    ed25519.PublicKey
	key    *voi.ExpandedPublicKey // pub, expanded once for batch verification

	mu   sync.Mutex
	mark uint64
	last [ed25519.SignatureSize]byte // the signature of the observation at mark; zero if not known
}

// NewVerifier returns a verifier with the given window (DefaultWindow if zero).
func NewVerifier(window time.Duration) *Verifier {
	if window <= 0 {
		window = DefaultWindow
	}
	return &Verifier{window: window, nodes: map[enjin.NodeID]*nodeState{}}
}

// Register records signer as node's attestation key, keeping mark as its high-water mark
// (the last sequence number stored). Registering again replaces the key and raises the mark.
func (v *Verifier) Register(node enjin.NodeID, signer string, mark uint64) error {
	if err := node.Validate(); err != nil {
		return fmt.Errorf("bus: register: %w", err)
	}
	pub, err := keys.ParseAttestationPublic(signer)
	if err != nil {
		return fmt.Errorf("bus: register %s: %w", node, err)
	}
	key, err := voi.NewExpandedPublicKey(voi.PublicKey(pub))
	if err != nil {
		return fmt.Errorf("bus: register %s: attestation key is not a curve point: %w", node, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	st := &nodeState{signer: signer, pub: pub, key: key, mark: mark}
	if old, ok := v.nodes[node]; ok {
		old.mu.Lock()
		if old.mark >= mark {
			st.mark, st.last = old.mark, old.last
		}
		old.mu.Unlock()
	}
	v.nodes[node] = st
	return nil
}

// SetLatest records sig as the signature of node's observation at seq, as the store has its
// newest: once seq is its mark, a copy of that observation sent again (its answer was lost
// when a ring 0 member stopped) passes as a duplicate rather than a replay. A mark past seq
// stays; seq past the mark raises it. It does nothing for a node not registered or a
// signature of the wrong size.
func (v *Verifier) SetLatest(node enjin.NodeID, seq uint64, sig []byte) {
	if len(sig) != ed25519.SignatureSize {
		return
	}
	v.mu.RLock()
	st := v.nodes[node]
	v.mu.RUnlock()
	if st == nil {
		return
	}
	st.mu.Lock()
	if seq >= st.mark {
		st.mark = seq
		copy(st.last[:], sig)
	}
	st.mu.Unlock()
}

// Known reports whether node has an attestation key registered.
func (v *Verifier) Known(node enjin.NodeID) bool {
	v.mu.RLock()
	_, ok := v.nodes[node]
	v.mu.RUnlock()
	return ok
}

// Forget drops node's key; its observations are rejected from now on.
func (v *Verifier) Forget(node enjin.NodeID) {
	v.mu.Lock()
	delete(v.nodes, node)
	v.mu.Unlock()
}

// Marks returns every node's high-water mark, for persisting.
func (v *Verifier) Marks() map[enjin.NodeID]uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	m := make(map[enjin.NodeID]uint64, len(v.nodes))
	for id, n := range v.nodes {
		m[id] = n.highWater()
	}
	return m
}

func (n *nodeState) highWater() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mark
}

// Verify checks one observation said to come from node (the token of the subject it arrived
// on), advancing the node's high-water mark if it is accepted.
func (v *Verifier) Verify(node enjin.NodeID, h nats.Header, payload []byte, now time.Time) (Seal, error) {
	it := []Item{{Node: node, Header: h, Payload: payload}}
	v.VerifyBatch(it, now)
	return it[0].Seal, it[0].Err
}

// Item is one observation of a batch: the inputs, and the verdict VerifyBatch fills in.
type Item struct {
	Node    enjin.NodeID
	Header  nats.Header
	Payload []byte

	Seal Seal
	Err  error // nil if accepted, else a *RejectError
	// Duplicate is set, with Err nil, for the node's latest accepted observation sent again:
	// stored already, or about to be — the caller stores it idempotently and acknowledges it
	// once that is committed.
	Duplicate bool
}

// VerifyBatch checks many observations at once, in order. Signatures are checked together
// (an ed25519 batch verification costs about half as much per signature as one at a time);
// if the batch holds a bad signature, each is checked alone to find it. Items of one node
// advance its high-water mark in the order given.
func (v *Verifier) VerifyBatch(items []Item, now time.Time) {
	sc := scratches.Get().(*scratch)
	defer sc.put()
	states := slices.Grow(sc.states[:0], len(items))[:len(items)]
	msgs := sc.msgs[:0]
	candidates := 0
	arena := sc.arena[:0]
	for i := range items {
		it := &items[i]
		var r Reason
		it.Seal, states[i], r = v.precheck(it.Node, it.Header, it.Payload, now)
		if r >= 0 {
			v.reject(it, r)
			continue
		}
		start := len(arena)
		arena = Canonical(arena, it.Node, it.Seal.Ts, it.Seal.Seq, it.Payload)
		msgs = append(msgs, arena[start:len(arena):len(arena)])
		candidates++
	}
	sc.states, sc.msgs, sc.arena = states, msgs, arena // what grew is kept
	ok := candidates > 0
	if candidates > 1 {
		es := sc.es[:0]
		for i := range items {
			if items[i].Err == nil {
				st := states[i]
				es = append(es, batchEntry{key: st.key, msg: msgs[len(es)], sig: items[i].Seal.Sig})
			}
		}
		sc.es = es
		ok = verifyBatch(sc.bv, es)
	}
	k := 0
	for i := range items {
		it := &items[i]
		if it.Err != nil {
			continue
		}
		msg := msgs[k]
		k++
		if !ok || candidates == 1 {
			if !ed25519consensus.Verify(states[i].pub, msg, it.Seal.Sig) {
				v.reject(it, BadSignature)
				continue
			}
		}
		switch states[i].advance(it.Seal.Seq, it.Seal.Sig) {
		case fresh:
			v.accepted.Add(1)
		case again:
			it.Duplicate = true
			v.duplicates.Add(1)
		default:
			v.reject(it, Replay) // a copy, or a different observation of this seq, came first
		}
	}
}

func (v *Verifier) reject(it *Item, r Reason) {
	v.rejected[r].Add(1)
	it.Err = &RejectError{Node: it.Node, Reason: r}
}

// precheck does every check but the signature; r is -1 if the observation may go on.
func (v *Verifier) precheck(node enjin.NodeID, h nats.Header, payload []byte, now time.Time) (Seal, *nodeState, Reason) {
	if len(payload) > MaxPayload {
		return Seal{}, nil, Malformed
	}
	sl, err := ParseSeal(h)
	if err != nil {
		return sl, nil, Malformed
	}
	v.mu.RLock()
	n := v.nodes[node]
	v.mu.RUnlock()
	if n == nil {
		return sl, nil, UnknownNode
	}
	if sl.Signer != n.signer {
		return sl, nil, WrongSigner
	}
	if d := now.UnixNano() - sl.Ts; d > int64(v.window) || d < -int64(v.window) {
		return sl, nil, OutsideWindow
	}
	if n.judge(sl.Seq, sl.Sig) == stale {
		return sl, nil, Replay
	}
	return sl, n, -1
}

// verdict is what a sequence number and signature are to a node's mark.
type verdict int

const (
	stale verdict = iota // at or below the mark, and not the latest sent again
	fresh                // above the mark
	again                // the mark's own observation: its seq and signature
)

// judge says what seq and sig are to the node's mark, without moving it.
func (n *nodeState) judge(seq uint64, sig []byte) verdict {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.judgeLocked(seq, sig)
}

func (n *nodeState) judgeLocked(seq uint64, sig []byte) verdict {
	switch {
	case seq > n.mark:
		return fresh
	case seq == n.mark && n.last != [ed25519.SignatureSize]byte{} && bytes.Equal(sig, n.last[:]):
		return again
	}
	return stale
}

// advance raises the node's mark to seq, keeping sig, if seq is above it; a signature
// checked already.
func (n *nodeState) advance(seq uint64, sig []byte) verdict {
	n.mu.Lock()
	defer n.mu.Unlock()
	v := n.judgeLocked(seq, sig)
	if v == fresh {
		n.mark = seq
		n.last = [ed25519.SignatureSize]byte{}
		copy(n.last[:], sig)
	}
	return v
}

// VerifyStored says why a stored observation, as ring 0's API answers it, does not verify
// against the keys registered (now or before) for the node that signed it, or "" if it does.
// Anyone can run it offline: `enjin verify` does, for every stored observation.
func VerifyStored(o enjin.SignedObservation, registered []string) string {
	if !slices.Contains(registered, o.Signer) {
		return "signer is not a key registered for the node"
	}
	pub, err := keys.ParseAttestationPublic(o.Signer)
	if err != nil {
		return err.Error()
	}
	if !VerifySignature(pub, o.SignedBy(), o.TsNs, o.Seq, o.Payload, o.Sig) {
		return "bad signature"
	}
	return ""
}

// VerifySignature checks a stored observation's signature by pub, with the same rules the
// verifier applies on the bus.
func VerifySignature(pub ed25519.PublicKey, node enjin.NodeID, ts int64, seq uint64, payload, sig []byte) bool {
	return ed25519consensus.Verify(pub, Canonical(nil, node, ts, seq, payload), sig)
}

// Stats are the verifier's counters.
type Stats struct {
	Accepted   uint64
	Duplicates uint64 // a node's latest accepted observation, sent again
	Rejected   map[Reason]uint64
}

// Stats returns the counters so far.
func (v *Verifier) Stats() Stats {
	s := Stats{Accepted: v.accepted.Load(), Duplicates: v.duplicates.Load(), Rejected: map[Reason]uint64{}}
	for i := range v.rejected {
		if c := v.rejected[i].Load(); c > 0 {
			s.Rejected[Reason(i)] = c
		}
	}
	return s
}
