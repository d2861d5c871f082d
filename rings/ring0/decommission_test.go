package ring0

import (
	"testing"
	"time"

	"enjin"
)

// A forgotten node is never judged again: no verdict for its silence, and an observation
// committed after it was forgotten does not bring it back.
func TestJudgeForgets(t *testing.T) {
	hb := time.Second
	j := newJudge(hb)
	t0 := time.Unix(1000, 0)
	for _, n := range []enjin.NodeID{"a", "b", "c"} {
		j.seen(n, t0)
	}
	j.forget("a")
	j.seen("a", t0.Add(hb)) // verified just before it was forgotten, committed after
	for d := hb; d <= 10*hb; d += hb {
		j.seen("b", t0.Add(d))
		j.seen("c", t0.Add(d))
		if v := j.tick(t0.Add(d)); len(v.Suspect)+len(v.Down) != 0 || v.Mass {
			t.Fatalf("at %v: %+v, want nothing said of a forgotten node", d, v)
		}
	}
}
