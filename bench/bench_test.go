package bench

import (
	"io"
	"testing"
	"time"
)

// The router bench's summary: each contender's medians, and the ratios of each round's runs
// side by side (router over nginx, router over Go's ReverseProxy), as medians.
func TestRouterFiguresSummarize(t *testing.T) {
	f := RouterFigures{Runs: []ProxyRun{
		{Proxy: "router", RPS: 100, P99Ms: 2}, {Proxy: "nginx", RPS: 50, P99Ms: 4}, {Proxy: "goproxy", RPS: 25, P99Ms: 8},
		{Proxy: "router", RPS: 120, P99Ms: 2}, {Proxy: "nginx", RPS: 100, P99Ms: 2}, {Proxy: "goproxy", RPS: 40, P99Ms: 4},
		{Proxy: "router", RPS: 90, P99Ms: 3}, {Proxy: "nginx", RPS: 90, P99Ms: 3}, {Proxy: "goproxy", RPS: 30, P99Ms: 6},
	}}
	f.summarize()
	for name, c := range map[string][2]float64{
		"router rps": {f.RouterRPS, 100}, "nginx rps": {f.NginxRPS, 90}, "goproxy rps": {f.GoProxyRPS, 30},
		"router/nginx rps": {f.RPSRatio, 1.2}, "router/nginx p99": {f.P99Ratio, 1},
		"router/goproxy rps": {f.GoRPSRatio, 3}, "router/goproxy p99": {f.GoP99Ratio, 0.5},
	} {
		if c[0] != c[1] {
			t.Errorf("%s: %v, want %v", name, c[0], c[1])
		}
	}
}

// The deploy bench's clock: each phase at the first progress line naming it, medians by phase.
func TestDeployPhases(t *testing.T) {
	l := &lineTimes{start: time.Now(), at: map[string]float64{}}
	io.WriteString(l, "packed 3 files, 8.4 MB\n")
	io.WriteString(l, "uploaded 8.4 MB\nrelease 2 starting (1 instance)\n")
	io.WriteString(l, "release 2 healthy\nrelease 2 healthy\n")
	if l.get("packed") <= 0 || l.get("uploaded") < l.get("packed") || l.get("starting") < l.get("uploaded") || l.get("healthy") < l.get("starting") || l.get("live") != 0 {
		t.Fatalf("phases %v", l.at)
	}
	m := phasesMedian([]DeployPhases{{Packed: 1, Routed: 10}, {Packed: 3, Routed: 30}, {Packed: 2, Routed: 20}})
	if m.Packed != 2 || m.Routed != 20 {
		t.Fatalf("median %+v", m)
	}
}

// perSecond times setup's task until a run lasts a second: the rate is the last run's n over
// its time, and only the run is timed, not the setup.
func TestPerSecond(t *testing.T) {
	var last int
	var took time.Duration
	rate := perSecond(func(n int) func() {
		last = n
		spin := make([]int, n) // set-up work that must not count
		return func() {
			t0 := time.Now()
			for i := range spin {
				spin[i] = i * i
			}
			for time.Since(t0) < time.Duration(n)*time.Microsecond { // 1 µs an operation
			}
			took = time.Since(t0)
		}
	})
	if took < time.Second || rate <= 0 || rate > 1.01e6 || float64(last)/took.Seconds() > rate*1.05 {
		t.Fatalf("rate %.0f/s from n %d in %v; want about 1e6/s, from a run of at least 1 s", rate, last, took)
	}
	if parts := shares(7); len(parts) < 1 || sum(parts) != 7 {
		t.Fatalf("shares(7) = %v", parts)
	}
}

func sum(v []int) (s int) {
	for _, x := range v {
		s += x
	}
	return s
}
