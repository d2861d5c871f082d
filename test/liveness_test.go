package test

import (
	"syscall"
	"testing"
	"time"

	"enjin"
	"enjin/services/inventory"
	"enjin/test/harness"
)

// TestLiveness runs five external ring 1 nodes as processes: a ring 0 restart marks none
// down, one killed with SIGKILL is down within six heartbeats, and silencing most of the
// rest at once brings the grace, not a mass down.
func TestLiveness(t *testing.T) {
	hb := 200 * time.Millisecond
	r := newRing0(t, hb)
	ids := []enjin.NodeID{"live-a", "live-b", "live-c", "live-d", "live-e"}
	procs := map[enjin.NodeID]*harness.Proc{}
	for _, id := range ids {
		procs[id] = harness.Start(t, "ring1", "--join-file", r.joinFile(id), "--ring0", r.api(),
			"--state-dir", t.TempDir(), "--heartbeat", hb.String(), "--log-level", "warn")
	}
	allUp := func() bool {
		for _, id := range ids {
			if r.nodeState(id) != "up" {
				return false
			}
		}
		return true
	}
	harness.Eventually(t, 20*time.Second, allUp, "all nodes up")

	// Restarting ring 0 marks no node down.
	r.restart()
	watch := time.Now().Add(10 * hb)
	for time.Now().Before(watch) {
		for _, id := range ids {
			if s := r.nodeState(id); s == "down" {
				t.Fatalf("%s marked down after ring 0 restarted", id)
			}
		}
	}
	harness.Eventually(t, 10*time.Second, allUp, "all nodes up after ring 0 restart")

	// The victim is the primary of a tier of two, live-b its replica.
	victim := ids[0]
	var tier inventory.Tier
	if code := r.call("POST", "/v1/tiers", map[string]any{"ring": 1, "label": "db", "replicas": 1}, &tier); code != 201 {
		t.Fatalf("create tier: %d", code)
	}
	for node, role := range map[enjin.NodeID]string{victim: "primary", "live-b": "replica"} {
		if code := r.call("PUT", "/v1/tiers/"+tier.ID+"/members/"+string(node), map[string]string{"role": role}, &tier); code != 200 {
			t.Fatalf("put %s in the tier: %d", node, code)
		}
	}
	epoch := tier.Members[0].Epoch

	// One node killed with SIGKILL is down within six heartbeats.
	procs[victim].Kill()
	killed := time.Now()
	harness.Eventually(t, 20*hb, func() bool { return r.nodeState(victim) == "down" }, "%s down", victim)
	took := time.Since(killed)
	t.Logf("killed node down after %v (%.1f heartbeats of %v)", took, float64(took)/float64(hb), hb)
	if took > 6*hb+hb/2 { // six heartbeats, plus the judge's tick and this poll
		t.Fatalf("down after %v, want within 6 heartbeats (%v)", took, 6*hb)
	}
	// Its tier's replica was promoted with it, under a new epoch, and a new replica placed.
	roles := func() map[enjin.NodeID]string {
		r.call("GET", "/v1/tiers/"+tier.ID, nil, &tier)
		m := map[enjin.NodeID]string{}
		for _, mb := range tier.Members {
			m[mb.Node] = mb.Role
			if mb.Epoch <= epoch {
				return nil
			}
		}
		return m
	}
	harness.Eventually(t, 5*time.Second, func() bool { m := roles(); return m != nil && m["live-b"] == "primary" },
		"live-b promoted: %+v", tier.Members)
	if m := roles(); len(m) != 2 || m[victim] != "" {
		t.Fatalf("the tier after the promotion: %+v; want live-b primary and one new replica, %s gone", tier.Members, victim)
	}
	t.Logf("the down primary's tier: %+v", tier.Members)

	// Silencing most of the remaining nodes at once: grace, not a mass down.
	quiet := ids[1:4]
	for _, id := range quiet {
		if err := syscall.Kill(procs[id].Cmd.Process.Pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	watch = time.Now().Add(12 * hb)
	states := map[string]int{}
	for time.Now().Before(watch) {
		for _, id := range quiet {
			s := r.nodeState(id)
			states[s]++
			if s == "down" {
				t.Fatalf("%s marked down while most nodes were silent at once", id)
			}
		}
	}
	t.Logf("while %d of 4 nodes were silent for 12 heartbeats, their states were %v", len(quiet), states)
	for _, id := range quiet {
		syscall.Kill(procs[id].Cmd.Process.Pid, syscall.SIGCONT)
	}
	harness.Eventually(t, 10*time.Second, func() bool {
		for _, id := range ids[1:] {
			if r.nodeState(id) != "up" {
				return false
			}
		}
		return true
	}, "silenced nodes back up")
	if s := r.nodeState(victim); s != "down" {
		t.Fatalf("killed node is %s, want down", s)
	}

}
