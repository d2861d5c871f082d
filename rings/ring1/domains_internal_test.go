package ring1

import (
	"testing"

	"enjin/bus"
)

// TestDomainParts: a set is taken once every part of it is in, in any order and with parts
// repeated; a part of a newer set drops what an older one had gathered.
func TestDomainParts(t *testing.T) {
	var d domainParts
	d1, d2, d3 := bus.Domain{Domain: "a.test"}, bus.Domain{Domain: "b.test"}, bus.Domain{Domain: "c.test"}
	steps := []struct {
		in    bus.Domains
		whole bool
		want  []string
	}{
		{bus.Domains{Set: "s1", Part: 1, Parts: 2, Domains: []bus.Domain{d2}}, false, nil},
		{bus.Domains{Set: "s1", Part: 1, Parts: 2, Domains: []bus.Domain{d2}}, false, nil},
		{bus.Domains{Set: "s1", Part: 0, Parts: 2, Domains: []bus.Domain{d1}}, true, []string{"a.test", "b.test"}},
		{bus.Domains{Set: "s2", Part: 0, Parts: 2, Domains: []bus.Domain{d1}}, false, nil},
		{bus.Domains{Set: "s3", Part: 1, Parts: 2, Domains: []bus.Domain{d3}}, false, nil},
		{bus.Domains{Set: "s3", Part: 0, Parts: 2}, true, []string{"c.test"}},
		{bus.Domains{Set: "s4", Part: 0, Parts: 1}, true, nil},
	}
	for i, s := range steps {
		all, whole := d.add(s.in)
		var got []string
		for _, x := range all {
			got = append(got, x.Domain)
		}
		if whole != s.whole || len(got) != len(s.want) || len(got) > 0 && got[len(got)-1] != s.want[len(s.want)-1] {
			t.Fatalf("step %d: got %v %v, want %v %v", i, got, whole, s.want, s.whole)
		}
	}
}
