package api_test

import (
	"slices"
	"strings"
	"testing"

	"enjin/services/api"
	"enjin/services/appapi"
	"enjin/services/inventory"
)

// TestAppRoutesBothSides: the app routes ring 0's meta API forwards are exactly those a real
// ring 1 app API serves, less those ring 1 serves ring 0 alone; and both are appapi's table.
func TestAppRoutesBothSides(t *testing.T) {
	a, err := api.New(api.Config{Store: &inventory.Store{}, Ring0: &testRing0{}, Checkers: checkers(t)})
	if err != nil {
		t.Fatal(err)
	}
	ring0 := api.AppPatterns(a)
	ring1 := realHost(t).Handler(ring1Token).Patterns()
	var forwarded, own []string
	for _, r := range appapi.Routes() {
		if r.Ring0 {
			own = append(own, r.Pattern())
		} else {
			forwarded = append(forwarded, r.Pattern())
		}
	}
	served := slices.DeleteFunc(slices.Clone(ring1), func(p string) bool { return slices.Contains(own, p) })
	for _, s := range [][]string{ring0, ring1, served, forwarded} {
		slices.Sort(s)
	}
	if !slices.Equal(ring0, served) {
		t.Errorf("ring 0 forwards:\n  %s\nring 1 serves callers:\n  %s", strings.Join(ring0, "\n  "), strings.Join(served, "\n  "))
	}
	if !slices.Equal(ring0, forwarded) {
		t.Errorf("ring 0 forwards:\n  %s\nthe table's forwarded routes:\n  %s", strings.Join(ring0, "\n  "), strings.Join(forwarded, "\n  "))
	}
	if len(ring1) != len(served)+len(own) || len(own) == 0 || len(ring0) < 10 {
		t.Errorf("ring 1 serves %d routes, %d of them ring 0's alone; ring 0 forwards %d", len(ring1), len(own), len(ring0))
	}
	for _, p := range api.Patterns(a) {
		if slices.Contains(own, p) {
			t.Errorf("the meta API serves %s, which is ring 0's alone", p)
		}
	}
}
