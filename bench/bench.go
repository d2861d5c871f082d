// Package bench measures enjin on this machine: envelope signing and verification (Verify),
// ring 0's ingest of a simulated fleet, one member or a cluster (Ingest), the app router next
// to nginx and Go's ReverseProxy (Router), tenant networks' VXLAN next to the underlay (Net)
// and a deploy's phases (Deploy). Each entry point takes its options, a context and the writer
// its figures go to, as text or, with Output "json", as one JSON document whose fields the
// README's figures and the tests read. Progress goes to the options' Progress writer.
//
// Only cmd/enjin imports bench (`enjin bench …`), and bench links no package testing: it
// times its loops itself. Some benchmarks run the enjin binary the options name as child
// processes (`enjin ring0`, the router benchmark's backend).
package bench

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"
)

// UsageError is a mistake in the options: the caller's to fix, not a failure of the run
// (cmd/enjin exits 2 for it).
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &UsageError{fmt.Sprintf(format, a...)} }

// progressTo returns a printf to w (nothing if w is nil) that starts each line with prefix.
func progressTo(w io.Writer, prefix string) func(string, ...any) {
	if w == nil {
		w = io.Discard
	}
	return func(f string, a ...any) { fmt.Fprintf(w, prefix+f+"\n", a...) }
}

// orDiscard is w, or io.Discard if w is nil.
func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// perSecond measures how many operations a second a task does: setup(n) readies n of them
// untimed and returns what does them, which is timed. n grows until a run takes at least a
// second, as go test's benchmarks do, without linking package testing into the binary.
func perSecond(setup func(n int) func()) float64 {
	for n := 1; ; {
		run := setup(n)
		t0 := time.Now()
		run()
		d := time.Since(t0)
		if d >= time.Second || n >= 1e9 {
			return float64(n) / d.Seconds()
		}
		// Aim 20 % past a second from this run's rate, growing at most a hundredfold.
		next := int(1.2 * float64(n) * float64(time.Second) / float64(max(d, time.Microsecond)))
		n = min(max(next, n+1), 100*n)
	}
}

// spread readies n operations with part: all of them on one goroutine, or if parallel split
// among the cores (see shares), each share on a goroutine of its own, the run waiting for all.
func spread(n int, parallel bool, part func(n int) func()) func() {
	if !parallel {
		return part(n)
	}
	var fns []func()
	for _, k := range shares(n) {
		fns = append(fns, part(k))
	}
	return func() {
		var wg sync.WaitGroup
		for _, fn := range fns {
			wg.Go(fn) // ends when its part is done
		}
		wg.Wait()
	}
}

// shares splits n operations among the cores: the parts' sizes.
func shares(n int) []int {
	procs := runtime.GOMAXPROCS(0)
	parts := make([]int, procs)
	for i := range parts {
		parts[i] = n / procs
	}
	parts[0] += n % procs
	return parts
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// PercentileMs is the p-th percentile of d in milliseconds (the element at p % of the sorted
// values; 100 the largest), 0 for none. It sorts d.
func PercentileMs(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return ms(d[min(len(d)-1, len(d)*p/100)])
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
