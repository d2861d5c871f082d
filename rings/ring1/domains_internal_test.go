package ring1

import (
	"testing"

	"enjin/bus"
)

// TestDomainParts: a set is taken once every part of it is in, in any order and with parts
// repeated, with the ACME challenges of every part; a part of a newer set drops what an older
// one had gathered.
func TestDomainParts(t *testing.T) {
	var d domainParts
	d1, d2, d3 := bus.Domain{Domain: "a.test"}, bus.Domain{Domain: "b.test"}, bus.Domain{Domain: "c.test"}
	ch := bus.Challenge{Domain: "d.test", Token: "t", KeyAuth: "t.k"}
	steps := []struct {
		in    bus.Domains
		whole bool
		want  []string
		chals int
	}{
		{bus.Domains{Set: "s1", Part: 1, Parts: 2, Domains: []bus.Domain{d2}}, false, nil, 0},
		{bus.Domains{Set: "s1", Part: 1, Parts: 2, Domains: []bus.Domain{d2}}, false, nil, 0},
		{bus.Domains{Set: "s1", Part: 0, Parts: 2, Domains: []bus.Domain{d1}}, true, []string{"a.test", "b.test"}, 0},
		{bus.Domains{Set: "s2", Part: 0, Parts: 2, Domains: []bus.Domain{d1}, Challenges: []bus.Challenge{ch}}, false, nil, 0},
		{bus.Domains{Set: "s3", Part: 1, Parts: 2, Domains: []bus.Domain{d3}, Challenges: []bus.Challenge{ch}}, false, nil, 0},
		{bus.Domains{Set: "s3", Part: 0, Parts: 2, Challenges: []bus.Challenge{ch}}, true, []string{"c.test"}, 2},
		{bus.Domains{Set: "s4", Part: 0, Parts: 1}, true, nil, 0},
	}
	for i, s := range steps {
		all, chals, whole := d.add(s.in)
		var got []string
		for _, x := range all {
			got = append(got, x.Domain)
		}
		if whole != s.whole || len(got) != len(s.want) || len(got) > 0 && got[len(got)-1] != s.want[len(s.want)-1] || len(chals) != s.chals {
			t.Fatalf("step %d: got %v %v with %d challenges, want %v %v with %d", i, got, whole, len(chals), s.want, s.whole, s.chals)
		}
	}
}
