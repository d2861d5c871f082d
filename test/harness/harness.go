// Package harness starts the real things enjin's tests run against: the production embedded
// broker configuration with a fresh trust chain in a temporary directory, and a throwaway
// PostgreSQL cluster built from the machine's own binaries. Helpers clean up after
// themselves through t.Cleanup and poll for conditions instead of sleeping.
//
// Only tests import harness.
package harness

import (
	"log/slog"
	"testing"
	"time"
)

// Logger returns a logger that writes errors to the test's output. Warnings (such as the
// permission violations security tests provoke by the thousand) are left out.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
}

// Eventually polls cond every few milliseconds until it holds or timeout passes, then fails
// the test with msg.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %v: "+msg, append([]any{timeout}, args...)...)
	}
}

// Poll reports whether cond held within timeout, checking every few milliseconds.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 20*time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
	}
}
