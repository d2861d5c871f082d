package router_test

import (
	"testing"
	"time"

	"enjin/services/router"
)

// TestAppStats counts each app's requests by status class and duration, keeps the counts
// across a change of the app's set, attributes nothing to an app for a host nobody routes,
// and forgets an app once it is removed.
func TestAppStats(t *testing.T) {
	rt := startRouter(t, router.Config{Logger: testLogger(t)})
	web := startBackend(t, "web-1")
	rt.SetRoute("acme", "web", []router.Backend{web.Backend()})
	rt.SetRoute("Globex", "API", nil) // 503 until it has an instance
	c := client(rt)
	for range 3 {
		get(t, c, "http://web.acme.apps.test/")
	}
	rt.SetRoute("acme", "web", []router.Backend{web.Backend(), startBackend(t, "web-2").Backend()}) // a new set, same counts
	get(t, c, "http://web.acme.apps.test/")
	get(t, c, "http://api.globex.apps.test/")
	get(t, c, "http://nobody.acme.apps.test/")
	got := map[string]router.AppStat{}
	for _, s := range rt.AppStats() {
		got[s.Tenant+"/"+s.App] = s
	}
	w, a := got["acme/web"], got["globex/api"]
	if len(got) != 2 || w.ByClass[2] != 4 || w.ByClass[5] != 0 || a.ByClass[5] != 1 || a.ByClass[2] != 0 {
		t.Fatalf("by class: %+v", got)
	}
	if n := len(router.LatencyBuckets) + 1; len(w.Buckets) != n || w.Buckets[n-1] != 4 || w.Sum <= 0 || w.Sum > 10*time.Second {
		t.Fatalf("durations of acme/web: %+v", w)
	}
	for i := 1; i < len(w.Buckets); i++ {
		if w.Buckets[i] < w.Buckets[i-1] {
			t.Fatalf("buckets not cumulative: %v", w.Buckets)
		}
	}
	rt.RemoveRoute("acme", "web")
	rt.SetRoute("acme", "web", []router.Backend{web.Backend()})
	for _, s := range rt.AppStats() {
		if s.App == "web" && s.ByClass[2] != 0 {
			t.Fatalf("a removed app's counts came back: %+v", s)
		}
	}
	t.Logf("acme/web: %d 2xx, mean %v; globex/api: %d 5xx", w.ByClass[2], w.Sum/4, a.ByClass[5])
}
