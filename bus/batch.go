package bus

import (
	"crypto/rand"
	"sync"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// batchEntry is one signature of a batch, with its signer's key already expanded.
type batchEntry struct {
	key *voi.ExpandedPublicKey // the key, decoded once at registration
	msg []byte
	sig []byte
}

// zip215 are the verification rules of ed25519consensus (ZIP 215), which checks single
// signatures here: a batch passes only if each of its signatures would pass alone.
var zip215 = &voi.Options{Verify: voi.VerifyOptionsZIP_215}

// verifyBatch checks signatures together with curve25519-voi's batch verifier: one
// multi-scalar multiplication (Pippenger's for large batches) over random 128-bit
// combinations of the cofactored equations, keys expanded once per node rather than decoded
// for every message — about a third of the cost of checking one by one. It reports true
// only if every signature is valid; on false the caller checks each alone to find the bad
// ones.
func verifyBatch(bv *voi.BatchVerifier, es []batchEntry) bool {
	if len(es) == 0 {
		return false
	}
	defer bv.Reset()
	for _, e := range es {
		if e.key == nil {
			return false
		}
		bv.AddExpandedWithOptions(e.key, e.msg, e.sig, zip215)
	}
	return bv.VerifyBatchOnly(rand.Reader)
}

// scratch is what one VerifyBatch needs beside its items: the nodes' states, the canonical
// messages (in one arena) and the batch verifier. A pool keeps it for the next batch, so a
// batch of 256 allocates little besides the curve arithmetic's own.
type scratch struct {
	states []*nodeState
	msgs   [][]byte
	arena  []byte
	es     []batchEntry
	bv     *voi.BatchVerifier
}

// scratchKeep is the largest arena a scratch is put back with: a batch of huge payloads
// does not pin its memory.
const scratchKeep = 4 << 20

var scratches = sync.Pool{New: func() any { return &scratch{bv: voi.NewBatchVerifier()} }}

func (sc *scratch) put() {
	clear(sc.states)
	clear(sc.msgs)
	clear(sc.es)
	sc.states, sc.msgs, sc.es = sc.states[:0], sc.msgs[:0], sc.es[:0]
	if cap(sc.arena) > scratchKeep {
		sc.arena = nil
	}
	scratches.Put(sc)
}
