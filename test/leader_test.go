package test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"enjin/test/harness"
)

// leaderView is GET /v1/leader.
type leaderView struct {
	Epoch      int64  `json:"epoch"`
	Member     string `json:"member"`
	ThisMember string `json:"this_member"`
	Leading    bool   `json:"leading"`
}

// leaderOf asks member r who leads; ok is false while r does not answer.
func leaderOf(r *ring0Proc) (leaderView, bool) {
	req, _ := http.NewRequest("GET", r.api()+"/v1/leader", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return leaderView{}, false
	}
	defer resp.Body.Close()
	var v leaderView
	return v, resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&v) == nil
}

// currentLeader waits for exactly one of members to say it leads with an epoch past after,
// failing if two ever do at once, and returns it and what it said.
func currentLeader(t *testing.T, members []*ring0Proc, after int64) (*ring0Proc, leaderView) {
	t.Helper()
	var lead *ring0Proc
	var view leaderView
	harness.Eventually(t, 15*time.Second, func() bool {
		lead = nil
		for _, r := range members {
			v, ok := leaderOf(r)
			if !ok || !v.Leading || v.Epoch <= after {
				continue
			}
			if lead != nil {
				t.Fatalf("two members lead: %+v", v)
			}
			lead, view = r, v
		}
		return lead != nil
	}, "one member leads after epoch %d", after)
	return lead, view
}

// TestRing0LeaderTakeover runs two ring 0 members on one store and SIGKILLs whichever leads,
// ten times, restarting it as a standby each time: the other takes over with a newer epoch
// every time, and the two never both say they lead.
func TestRing0LeaderTakeover(t *testing.T) {
	hb := 200 * time.Millisecond
	a := newRing0(t, hb)
	dir, err := os.MkdirTemp("/tmp", "enjin-r0b-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b := &ring0Proc{t: t, state: filepath.Join(dir, "state"), dbURL: a.dbURL,
		natsPort: harness.FreePort(t), apiPort: harness.FreePort(t), heartbeat: hb}
	harness.CopyKeys(t, a.state, b.state) // members hold one trust chain
	b.start()
	members := []*ring0Proc{a, b}

	lead, view := currentLeader(t, members, 0)
	var takeovers []time.Duration
	for range 10 {
		lead.proc.Kill()
		killed := time.Now()
		newLead, next := currentLeader(t, members, view.Epoch)
		if newLead == lead {
			t.Fatal("the killed member leads")
		}
		takeovers = append(takeovers, time.Since(killed))
		if next.Epoch <= view.Epoch || next.Member == view.Member {
			t.Fatalf("takeover: epoch %d by %s after epoch %d by %s", next.Epoch, next.Member, view.Epoch, view.Member)
		}
		view = next
		lead.start() // back as a standby
		if v, ok := leaderOf(lead); !ok || v.Leading || v.Epoch != view.Epoch {
			t.Fatalf("the restarted member: %+v (answered %v); want a standby at epoch %d", v, ok, view.Epoch)
		}
		lead = newLead
	}
	slices.Sort(takeovers)
	t.Logf("leader takeover after SIGKILL, %d times: p50 %v, p99 %v (max)", len(takeovers),
		takeovers[len(takeovers)/2].Round(time.Millisecond), takeovers[len(takeovers)-1].Round(time.Millisecond))
	if worst := takeovers[len(takeovers)-1]; worst > 5*time.Second {
		t.Fatalf("a takeover took %v; want within 5 s (lease poll %v)", worst, time.Second)
	}
}
