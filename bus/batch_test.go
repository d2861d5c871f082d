package bus

import (
	"crypto/ed25519"
	"math/rand/v2"
	"testing"

	"filippo.io/edwards25519"
	"github.com/hdevalence/ed25519consensus"
)

// verifyBatch must agree with ed25519consensus's batch verifier on valid batches and on
// batches with one damaged signature, key or message.
func TestVerifyBatchAgreesWithReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for trial := range 300 {
		n := 2 + rng.IntN(40)
		es := make([]batchEntry, n)
		for i := range es {
			pub, priv, _ := ed25519.GenerateKey(nil)
			msg := make([]byte, 1+rng.IntN(300))
			for j := range msg {
				msg[j] = byte(rng.Uint32())
			}
			pt, _ := new(edwards25519.Point).SetBytes(pub)
			es[i] = batchEntry{pub: pub, point: pt, msg: msg, sig: ed25519.Sign(priv, msg)}
		}
		if trial%3 != 0 { // damage one entry
			e := &es[rng.IntN(n)]
			switch rng.IntN(3) {
			case 0:
				e.sig = append([]byte(nil), e.sig...)
				e.sig[rng.IntN(64)] ^= byte(1 + rng.IntN(255))
			case 1:
				e.msg = append([]byte(nil), e.msg...)
				e.msg[rng.IntN(len(e.msg))] ^= 1
			case 2:
				other, _, _ := ed25519.GenerateKey(nil)
				e.pub = other
				e.point, _ = new(edwards25519.Point).SetBytes(other)
			}
		}
		ref := ed25519consensus.NewBatchVerifier()
		for _, e := range es {
			ref.Add(e.pub, e.msg, e.sig)
		}
		if got, want := verifyBatch(es), ref.Verify(); got != want {
			t.Fatalf("trial %d (%d entries): verifyBatch %v, reference %v", trial, n, got, want)
		}
		if trial%3 == 0 && !verifyBatch(es) {
			t.Fatalf("trial %d: a valid batch failed", trial)
		}
	}
}
