package test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"enjin/test/harness"
)

// TestCredentialRenewal gives ring 1 credentials a three-second life: a joined node renews
// its own before it expires, keeps being heard well past the first expiry, and, restarted
// after that expiry, comes back with the renewed credential it wrote down.
func TestCredentialRenewal(t *testing.T) {
	ttl := 3 * time.Second
	hb := 200 * time.Millisecond
	r := newRing0(t, hb, "--creds-ttl", ttl.String())
	state := t.TempDir()
	args := []string{"ring1", "--join-file", r.joinFile("renew-a"), "--ring0", r.api(), "--state-dir", state,
		"--heartbeat", hb.String(), "--log-level", "warn"}
	p := harness.Start(t, args...)
	harness.Eventually(t, 10*time.Second, func() bool { return r.nodeState("renew-a") == "up" }, "node up")
	creds := filepath.Join(state, "ring1", "node.creds")
	first, err := os.ReadFile(creds)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, seq0 := r.node("renew-a")
	// Well past the first credential's expiry, the node is still heard from.
	harness.Eventually(t, 4*ttl, func() bool {
		s, seq := r.node("renew-a")
		return time.Since(start) > 2*ttl && s == "up" && seq > seq0
	}, "node heard after its first credential expired")
	if s, _ := r.node("renew-a"); s != "up" {
		t.Fatalf("node %s after %v", s, time.Since(start))
	}
	renewed, _ := os.ReadFile(creds)
	if string(renewed) == string(first) {
		t.Fatal("the node never wrote a renewed credential")
	}
	// Restart the node past the first credential's expiry: it starts with the renewed one.
	syscall.Kill(p.Cmd.Process.Pid, syscall.SIGTERM)
	p.Cmd.Wait()
	_, seq1 := r.node("renew-a")
	harness.Start(t, args...)
	harness.Eventually(t, 10*time.Second, func() bool { _, seq := r.node("renew-a"); return seq > seq1 }, "restarted node heard")
	t.Logf("credentials of %v renewed; node heard for %v and after a restart", ttl, time.Since(start).Round(time.Millisecond))
}
