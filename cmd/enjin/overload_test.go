package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"enjin/bench"
)

// benchIngestJSON runs `enjin bench ingest … -o json` as a user would and decodes its figures.
func benchIngestJSON(t *testing.T, args ...string) bench.IngestFigures {
	t.Helper()
	var f bench.IngestFigures
	benchIngestInto(t, &f, args...)
	return f
}

// benchIngestInto runs `enjin bench ingest … -o json` and decodes what it prints into v.
func benchIngestInto(t *testing.T, v any, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary, append(append([]string{"bench", "ingest"}, args...), "-o", "json")...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench ingest %v: %v", args, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("bench ingest %v: %v in %q", args, err, out)
	}
}

// `bench ingest --ring0 2` runs one member, then a cluster of two, each on a fresh store:
// every observation acknowledged and stored both times.
func TestBenchIngestCluster(t *testing.T) {
	var figs []bench.IngestFigures
	benchIngestInto(t, &figs, "--nodes", "2000", "--rate", "2000", "--duration", "2s", "--ring0", "2")
	if len(figs) != 2 || figs[0].Members != 1 || figs[1].Members != 2 {
		t.Fatalf("%d runs: %+v; want one member, then two", len(figs), figs)
	}
	for _, f := range figs {
		t.Logf("%d members: %.0f/s committed while offered, ack p99 %.0f ms", f.Members, f.WindowRate, f.AckP99Ms)
		if f.Acked != int64(f.Sent) || f.Stored != int64(f.Sent) || f.AckedMissing != 0 {
			t.Errorf("%d members: %d sent, %d acknowledged, %d stored, %d acknowledged missing", f.Members, f.Sent, f.Acked, f.Stored, f.AckedMissing)
		}
	}
}

// Offered twice what it can commit for 10 s, a small ring 0 (a 256 MiB budget) stays within
// its memory budget, defers the excess at once with its reason, and loses nothing it
// acknowledged: the simulated nodes, backing off as asked, catch up after and every
// observation they sent is in the store.
//
// A node has one heartbeat in flight at a time, so a fleet can only overload ring 0 if it
// has more nodes than ring 0 lets wait (its queue, at most 16,384, and the batches being
// committed): 20,000 nodes once never did on a machine committing 32,000/s — they just
// slowed to what it acknowledged. 40,000 can.
func TestOverloadIsBounded(t *testing.T) {
	const nodes, budget = "40000", 256
	var capacity float64
	for try := 1; capacity <= 0 && try <= 3; try++ { // a machine busy with other work may commit nothing in 3 s
		capacity = benchIngestJSON(t, "--nodes", nodes, "--rate", "60000", "--duration", "3s", "--ring0-memory-mb", fmt.Sprint(budget)).WindowRate
	}
	if capacity <= 0 {
		t.Fatal("no capacity measured in three tries")
	}
	var f bench.IngestFigures
	for try := 1; ; try++ {
		f = benchIngestJSON(t, "--nodes", nodes, "--rate", fmt.Sprintf("%.0f", 2*capacity), "--duration", "10s", "--ring0-memory-mb", fmt.Sprint(budget))
		if f.Deferred > 0 || f.WindowRate < 0.95*f.OfferedRate || try == 3 {
			break
		}
		// It committed all it was offered: the capacity measured was low (the machine was
		// busy then). What it just committed is a truer one.
		t.Logf("offered %.0f/s, all committed: capacity was %.0f/s, now %.0f/s", f.OfferedRate, capacity, f.WindowRate)
		capacity = f.WindowRate
	}
	t.Logf("capacity %.0f/s; offered %.0f/s: committed %.0f/s while offered, %d deferred (%.0f/s), accepted ack p99 %.0f ms, caught up %.0f ms after, ring 0 peak RSS %.0f MiB",
		capacity, f.OfferedRate, f.WindowRate, f.Deferred, f.DeferredRate, f.AckP99Ms, f.CatchUpMs, f.Ring0PeakMiB)
	if f.Ring0PeakMiB <= 0 || f.Ring0PeakMiB > budget {
		t.Errorf("ring 0 peak RSS %.0f MiB, budget %d MiB", f.Ring0PeakMiB, budget)
	}
	if f.Acked != int64(f.Sent) || f.Refused != 0 || f.Stored != int64(f.Sent) {
		t.Errorf("%d sent, %d acknowledged, %d refused, %d stored: want every one acknowledged and stored", f.Sent, f.Acked, f.Refused, f.Stored)
	}
	if f.Deferred == 0 {
		t.Errorf("nothing deferred at %.0f/s offered: not overloaded", f.OfferedRate)
	}
	for reason, n := range f.Reasons {
		if !strings.Contains(reason, "overloaded") {
			t.Errorf("%d answers gave reason %q", n, reason)
		}
	}
}

// Three ring 0 members take observations while the leading one is SIGKILLed ten times (and
// started again as a standby): nothing acknowledged is lost, no node is judged down, a newer
// leader is recorded every time, and what a killed member had taken but not acknowledged
// comes back to the nodes as sent again — acknowledged, by the member that takes it, as a
// copy of what is stored (TestLatestSentAgainIsAcknowledged) — never as missing.
func TestLeaderKillsLoseNothing(t *testing.T) {
	var figs []bench.IngestFigures
	benchIngestInto(t, &figs, "--nodes", "5000", "--rate", "3000", "--duration", "15s", "--ring0", "3", "--kill-leader", "10")
	if len(figs) != 2 {
		t.Fatalf("%d runs, want one member, then three", len(figs))
	}
	f := figs[1]
	t.Logf("3 members, leader killed %d times: next leader after p50 %.0f ms, max %.0f ms; %d acknowledged, %d refused %v, %d unanswered and sent again (%d \"no responders\" from the broker); ack p99 %.0f ms",
		f.LeaderKills, f.TakeoverP50Ms, f.TakeoverMaxMs, f.Acked, f.Refused, f.Reasons, f.Timeouts, f.NoResponders, f.AckP99Ms)
	if f.LeaderKills != 10 {
		t.Fatalf("the leader was killed %d times, want 10", f.LeaderKills)
	}
	if f.AckedMissing != 0 || f.Acked+f.Refused != int64(f.Sent) || f.Stored != int64(f.Sent) {
		t.Errorf("%d sent, %d acknowledged, %d refused, %d stored, %d acknowledged missing", f.Sent, f.Acked, f.Refused, f.Stored, f.AckedMissing)
	}
	if f.DownAfterLoad != 0 {
		t.Errorf("%d nodes judged down as the load ended", f.DownAfterLoad)
	}
	for reason := range f.Reasons {
		if !strings.Contains(reason, "replay") && !strings.Contains(reason, "overloaded") {
			t.Errorf("answers gave reason %q", reason)
		}
	}
	if f.TakeoverMaxMs > 5000 {
		t.Errorf("a takeover took %.0f ms", f.TakeoverMaxMs)
	}
}
