package bus

import (
	"crypto/ed25519"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"enjin/keys"
	"enjin/rings"
)

// Reason says why the verifier rejected an observation.
type Reason int

// Rejection reasons, in the order the verifier checks them.
const (
	Malformed     Reason = iota // missing or badly formed seal headers, or an oversized payload
	UnknownNode                 // no attestation key registered for the node
	WrongSigner                 // Obs-Signer is not the key registered for the node
	OutsideWindow               // |now − ts| exceeds the window
	Replay                      // seq not above the node's high-water mark
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
	Node   rings.NodeID
	Reason Reason
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("bus: observation from %s rejected: %s", e.Node, e.Reason)
}

// DefaultWindow is how far an observation's timestamp may be from the verifier's clock.
const DefaultWindow = 30 * time.Second

// Verifier checks signed observations: the signer is the attestation key registered for the
// node named by the (server-enforced) subject, the timestamp is within the window, the seq is
// above the node's high-water mark and the signature covers the canonical bytes. It counts
// what it accepts and why it rejects. It is safe for concurrent use.
type Verifier struct {
	window time.Duration

	mu    sync.RWMutex
	nodes map[rings.NodeID]*nodeState

	accepted atomic.Uint64
	rejected [numReasons]atomic.Uint64
	bufs     sync.Pool
}

type nodeState struct {
	signer string
	pub    ed25519.PublicKey

	mu   sync.Mutex
	mark uint64
}

// NewVerifier returns a verifier with the given window (DefaultWindow if zero).
func NewVerifier(window time.Duration) *Verifier {
	if window <= 0 {
		window = DefaultWindow
	}
	return &Verifier{window: window, nodes: map[rings.NodeID]*nodeState{}}
}

// Register records signer as node's attestation key, keeping mark as its high-water mark
// (the last sequence number stored). Registering again replaces the key and raises the mark.
func (v *Verifier) Register(node rings.NodeID, signer string, mark uint64) error {
	if err := node.Validate(); err != nil {
		return fmt.Errorf("bus: register: %w", err)
	}
	pub, err := keys.ParseAttestationPublic(signer)
	if err != nil {
		return fmt.Errorf("bus: register %s: %w", node, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if old, ok := v.nodes[node]; ok {
		mark = max(mark, old.highWater())
	}
	v.nodes[node] = &nodeState{signer: signer, pub: pub, mark: mark}
	return nil
}

// Forget drops node's key; its observations are rejected from now on.
func (v *Verifier) Forget(node rings.NodeID) {
	v.mu.Lock()
	delete(v.nodes, node)
	v.mu.Unlock()
}

// Marks returns every node's high-water mark, for persisting.
func (v *Verifier) Marks() map[rings.NodeID]uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	m := make(map[rings.NodeID]uint64, len(v.nodes))
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
func (v *Verifier) Verify(node rings.NodeID, h nats.Header, payload []byte, now time.Time) (Seal, error) {
	sl, r := v.check(node, h, payload, now)
	if r >= 0 {
		v.rejected[r].Add(1)
		return sl, &RejectError{Node: node, Reason: r}
	}
	v.accepted.Add(1)
	return sl, nil
}

func (v *Verifier) check(node rings.NodeID, h nats.Header, payload []byte, now time.Time) (Seal, Reason) {
	if len(payload) > MaxPayload {
		return Seal{}, Malformed
	}
	sl, err := ParseSeal(h)
	if err != nil {
		return sl, Malformed
	}
	v.mu.RLock()
	n := v.nodes[node]
	v.mu.RUnlock()
	if n == nil {
		return sl, UnknownNode
	}
	if sl.Signer != n.signer {
		return sl, WrongSigner
	}
	if d := now.UnixNano() - sl.Ts; d > int64(v.window) || d < -int64(v.window) {
		return sl, OutsideWindow
	}
	if sl.Seq <= n.highWater() {
		return sl, Replay
	}
	bp, _ := v.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = Canonical((*bp)[:0], node, sl.Ts, sl.Seq, payload)
	ok := ed25519.Verify(n.pub, *bp, sl.Sig)
	v.bufs.Put(bp)
	if !ok {
		return sl, BadSignature
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if sl.Seq <= n.mark {
		return sl, Replay // a copy raced this one and won
	}
	n.mark = sl.Seq
	return sl, -1
}

// Stats are the verifier's counters.
type Stats struct {
	Accepted uint64
	Rejected map[Reason]uint64
}

// Stats returns the counters so far.
func (v *Verifier) Stats() Stats {
	s := Stats{Accepted: v.accepted.Load(), Rejected: map[Reason]uint64{}}
	for i := range v.rejected {
		if c := v.rejected[i].Load(); c > 0 {
			s.Rejected[Reason(i)] = c
		}
	}
	return s
}
