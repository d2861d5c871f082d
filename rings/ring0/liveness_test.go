package ring0

import (
	"slices"
	"strings"
	"testing"
	"time"

	"enjin"
	"enjin/services/inventory"
)

func TestJudgeSuspectThenDown(t *testing.T) {
	hb := time.Second
	j := newJudge(hb)
	t0 := time.Unix(1000, 0)
	j.seen("a", t0)
	for _, tc := range []struct {
		at            time.Duration
		suspect, down []enjin.NodeID
	}{
		{2 * hb, nil, nil},
		{3 * hb, []enjin.NodeID{"a"}, nil},
		{5 * hb, nil, nil},
		{6 * hb, nil, []enjin.NodeID{"a"}},
		{9 * hb, nil, nil},
	} {
		v := j.tick(t0.Add(tc.at))
		if !slices.Equal(v.Suspect, tc.suspect) || !slices.Equal(v.Down, tc.down) || v.Mass {
			t.Fatalf("at %v: %+v, want suspect %v down %v", tc.at, v, tc.suspect, tc.down)
		}
	}
	j.seen("a", t0.Add(10*hb))
	if v := j.tick(t0.Add(11 * hb)); len(v.Down)+len(v.Suspect) != 0 {
		t.Fatalf("back up: %+v", v)
	}
}

func TestJudgeGraceAfterRestart(t *testing.T) {
	hb := time.Second
	start := time.Unix(5000, 0)
	j := newJudge(hb)
	long := start.Add(-time.Hour)
	j.load([]inventory.NodeKey{{Node: "a", State: "up", LastObsAt: &long}, {Node: "b", State: "down"}}, start)
	for d := time.Duration(0); d < suspectAfter*hb; d += hb / 4 {
		if v := j.tick(start.Add(d)); len(v.Down)+len(v.Suspect) != 0 {
			t.Fatalf("%v after restart: %+v", d, v)
		}
	}
}

func TestJudgeMassSilenceHolds(t *testing.T) {
	hb := time.Second
	j := newJudge(hb)
	t0 := time.Unix(1000, 0)
	for _, n := range []enjin.NodeID{"a", "b", "c", "d", "e"} {
		j.seen(n, t0)
	}
	j.seen("e", t0.Add(20*hb)) // one keeps talking, four go quiet at once
	for d := hb; d <= 20*hb; d += hb {
		v := j.tick(t0.Add(d))
		if len(v.Down) != 0 {
			t.Fatalf("mass down at %v: %+v", d, v)
		}
		if d >= suspectAfter*hb && !v.Mass {
			t.Fatalf("at %v most nodes are quiet but no grace: %+v", d, v)
		}
	}
	// One node alone going quiet is judged normally.
	k := newJudge(hb)
	for _, n := range []enjin.NodeID{"b", "c", "d"} {
		k.seen(n, t0.Add(10*hb))
	}
	k.seen("a", t0)
	if v := k.tick(t0.Add(10 * hb)); !slices.Equal(v.Down, []enjin.NodeID{"a"}) || v.Mass {
		t.Fatalf("single failure: %+v", v)
	}
}

func TestClaimedState(t *testing.T) {
	for in, want := range map[string]string{
		`{"node":"n1","ring":1,"state":"up","time":"x"}`: "up",
		`{"state":"draining"}`:                           "draining",
		`{"node":"n1"}`:                                  "",
		`{"state":"a\"b"}`:                               "",
		`{"state":"` + strings.Repeat("x", 40) + `"}`:    "",
		`not json "state":"up`:                           "",
		``:                                               "",
	} {
		if got := claimedState([]byte(in)); got != want {
			t.Errorf("claimedState(%q) = %q, want %q", in, got, want)
		}
	}
}

// A node ring 0 deferred (its heartbeats reached ring 0, which could not take them yet) is
// heard from: it is not declared suspect or down meanwhile, and hearing neither adds nor
// revives a node.
func TestJudgeHearsDeferredNodes(t *testing.T) {
	hb := time.Second
	j := newJudge(hb)
	t0 := time.Unix(1000, 0)
	j.seen("a", t0)
	j.seen("b", t0)
	j.seen("c", t0)
	for i := 1; i <= 8; i++ {
		j.heard("a", t0.Add(time.Duration(i)*hb))
		j.heard("b", t0.Add(time.Duration(i)*hb))
		j.heard("z", t0.Add(time.Duration(i)*hb))
		v := j.tick(t0.Add(time.Duration(i) * hb))
		if slices.Contains(v.Suspect, "a") || slices.Contains(v.Down, "a") || slices.Contains(v.Suspect, "b") {
			t.Fatalf("at %d: %+v: a deferred node judged quiet", i, v)
		}
		if i == 6 && !slices.Equal(v.Down, []enjin.NodeID{"c"}) {
			t.Fatalf("at 6: %+v, want c down", v)
		}
	}
	if _, ok := j.nodes["z"]; ok {
		t.Fatal("hearing added an unknown node")
	}
	j.heard("c", t0.Add(9*hb))
	if j.nodes["c"].state != "down" {
		t.Fatal("hearing revived a down node")
	}
}
