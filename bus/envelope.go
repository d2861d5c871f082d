package bus

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/keys"
)

// Headers of a signed observation. The signature travels in headers so the payload, which
// subject mappings never touch, stays exactly as signed.
const (
	HdrSigner = "Obs-Signer" // attestation public key (unpadded base64url ed25519)
	HdrTs     = "Obs-Ts"     // unix nanoseconds, decimal
	HdrSeq    = "Obs-Seq"    // strictly increasing per signer, decimal
	HdrSig    = "Obs-Sig"    // unpadded base64url ed25519 signature of Canonical
)

// domain separates observation signatures from every other use of an ed25519 key.
const domain = "ENJIN-OBS-1\x00"

// MaxPayload bounds an observation payload; heartbeats are a few hundred bytes.
const MaxPayload = 64 << 10

// Seal is the signature part of a signed observation.
type Seal struct {
	Signer string // attestation public key
	Ts     int64  // unix ns
	Seq    uint64
	Sig    []byte
}

// Canonical returns the bytes an observation signature covers: the domain separator, the
// length-prefixed node id, the timestamp, the sequence number and the payload. The subject
// is not covered (imports rewrite it); the node id is, so an observation carried to another
// node's subject fails verification.
func Canonical(dst []byte, node enjin.NodeID, ts int64, seq uint64, payload []byte) []byte {
	dst = append(dst, domain...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(node)))
	dst = append(dst, node...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	dst = binary.BigEndian.AppendUint64(dst, seq)
	return append(dst, payload...)
}

// Signer signs a node's observations with its attestation key. Sequence numbers start at
// the clock's unix nanoseconds and then strictly increase, so a node that restarts without
// remembering its last number still continues above its high-water mark.
type Signer struct {
	node enjin.NodeID
	priv ed25519.PrivateKey
	pub  string

	mu   sync.Mutex
	last uint64
	buf  []byte
}

// NewSigner returns a signer for node with attestation key k.
func NewSigner(node enjin.NodeID, k *keys.Attestation) *Signer {
	return &Signer{node: node, priv: k.PrivateKey(), pub: k.Public()}
}

// Node is the node the signer signs for.
func (s *Signer) Node() enjin.NodeID { return s.node }

// Public is the attestation public key the signer's seals verify against.
func (s *Signer) Public() string { return s.pub }

// Sign seals payload at time now.
func (s *Signer) Sign(payload []byte, now time.Time) Seal {
	ts := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := max(s.last+1, uint64(ts))
	s.last = seq
	s.buf = Canonical(s.buf[:0], s.node, ts, seq, payload)
	return Seal{Signer: s.pub, Ts: ts, Seq: seq, Sig: ed25519.Sign(s.priv, s.buf)}
}

// Header encodes the seal as message headers.
func (sl Seal) Header() nats.Header {
	return nats.Header{
		HdrSigner: {sl.Signer},
		HdrTs:     {strconv.FormatInt(sl.Ts, 10)},
		HdrSeq:    {strconv.FormatUint(sl.Seq, 10)},
		HdrSig:    {base64.RawURLEncoding.EncodeToString(sl.Sig)},
	}
}

var errMalformed = errors.New("malformed seal")

// ParseSeal decodes the seal headers strictly: each exactly once, canonical decimal numbers,
// a signature of the right size.
func ParseSeal(h nats.Header) (Seal, error) {
	var sl Seal
	one := func(k string) (string, bool) {
		v := h[k]
		if len(v) != 1 || len(v[0]) == 0 || len(v[0]) > 128 {
			return "", false
		}
		return v[0], true
	}
	signer, ok1 := one(HdrSigner)
	ts, ok2 := one(HdrTs)
	seq, ok3 := one(HdrSeq)
	sig, ok4 := one(HdrSig)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return sl, errMalformed
	}
	var err error
	if sl.Ts, err = strconv.ParseInt(ts, 10, 64); err != nil || sl.Ts <= 0 || strconv.FormatInt(sl.Ts, 10) != ts {
		return sl, errMalformed
	}
	if sl.Seq, err = strconv.ParseUint(seq, 10, 64); err != nil || sl.Seq == 0 || strconv.FormatUint(sl.Seq, 10) != seq {
		return sl, errMalformed
	}
	if len(sig) != base64.RawURLEncoding.EncodedLen(ed25519.SignatureSize) {
		return sl, errMalformed
	}
	if sl.Sig, err = base64.RawURLEncoding.Strict().DecodeString(sig); err != nil {
		return sl, errMalformed
	}
	sl.Signer = signer
	return sl, nil
}
