package bus

import (
	"crypto/ed25519"
	"math/rand/v2"
	"testing"

	"github.com/hdevalence/ed25519consensus"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

func expand(t *testing.T, pub ed25519.PublicKey) *voi.ExpandedPublicKey {
	t.Helper()
	k, err := voi.NewExpandedPublicKey(voi.PublicKey(pub))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// verifyBatch must agree with ed25519consensus's batch verifier on valid batches and on
// batches with one damaged signature, key or message.
func TestVerifyBatchAgreesWithReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for trial := range 300 {
		n := 2 + rng.IntN(40)
		es, pubs := make([]batchEntry, n), make([]ed25519.PublicKey, n)
		for i := range es {
			pub, priv, _ := ed25519.GenerateKey(nil)
			msg := make([]byte, 1+rng.IntN(300))
			for j := range msg {
				msg[j] = byte(rng.Uint32())
			}
			es[i] = batchEntry{key: expand(t, pub), msg: msg, sig: ed25519.Sign(priv, msg)}
			pubs[i] = pub
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
				k := rng.IntN(n)
				es[k].key, pubs[k] = expand(t, other), other
				e = &es[k]
			}
		}
		ref := ed25519consensus.NewBatchVerifier()
		for i, e := range es {
			ref.Add(pubs[i], e.msg, e.sig)
		}
		if got, want := verifyBatch(voi.NewBatchVerifier(), es), ref.Verify(); got != want {
			t.Fatalf("trial %d (%d entries): verifyBatch %v, reference %v", trial, n, got, want)
		}
		if trial%3 == 0 && !verifyBatch(voi.NewBatchVerifier(), es) {
			t.Fatalf("trial %d: a valid batch failed", trial)
		}
	}
}
