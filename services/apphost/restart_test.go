package apphost_test

import (
	"sort"
	"syscall"
	"testing"
	"time"

	"enjin/services/apphost"
	"enjin/test/harness"
)

// An app's only instance is SIGKILLed 20 times while four clients ask it without pause
// through the router: the watchdog starts a killed working instance again at once, the
// router holds the requests meanwhile, and not one fails. Kill → serving again is reported.
func TestRestartLosesNoRequest(t *testing.T) {
	w := newWorld(t)
	const host = "one.acme.apps.test"
	if _, err := w.deploy(t.Context(), "acme", "one", bundle(t, "web: ./sampleapp\n", `{"health":"/healthz"}`)); err != nil {
		t.Fatal(err)
	}
	l := w.load(host, 4)
	var backs []time.Duration
	for k := 1; k <= 20; k++ {
		ps, _ := w.host.Ps("acme", "one")
		killed := time.Now()
		syscall.Kill(-ps[0].PID, syscall.SIGKILL)
		harness.Eventually(t, 5*time.Second, func() bool {
			ps, _ := w.host.Ps("acme", "one")
			return ps[0].Restarts == k && ps[0].State == apphost.Healthy
		}, "instance healthy again after kill %d", k)
		backs = append(backs, time.Since(killed))
		// Healthy a while, as a working instance is: the watchdog's rule is about time
		// healthy (a crash loop backs off), so waiting it out is the point here.
		time.Sleep(600 * time.Millisecond)
	}
	ok, failed, first := l.stop()
	sort.Slice(backs, func(i, j int) bool { return backs[i] < backs[j] })
	t.Logf("20 SIGKILLs of the only instance: %d requests served, %d failed; kill → healthy p50 %v, max %v; router: %v",
		ok, failed, backs[len(backs)/2], backs[len(backs)-1], w.router.Stats())
	if failed > 0 {
		t.Fatalf("%d requests failed (first: %v)", failed, first)
	}
	if w.router.Stats().Held == 0 {
		t.Fatal("no request was held: the kills were not under traffic")
	}
}
