package harness

import (
	"testing"

	"enjin/keys"
)

// CopyKeys copies a state directory's keys/ into another (keys.CopyChain): what an operator
// does to give a new ring 0 member the trust chain.
func CopyKeys(t testing.TB, from, to string) {
	t.Helper()
	if err := keys.CopyChain(from, to); err != nil {
		t.Fatal(err)
	}
}
