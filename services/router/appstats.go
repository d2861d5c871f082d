package router

import (
	"slices"
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds of the request duration buckets AppStats counts in,
// Prometheus' way: cumulative, the last one +Inf implied.
var LatencyBuckets = []time.Duration{time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second}

// appStats counts one app's requests through this router, whatever backends answer them:
// it lives as long as the app is routed, across changes of its set.
type appStats struct {
	tenant, app string
	byClass     [6]atomic.Uint64  // [2]: 2xx; [0]: odd statuses
	buckets     [14]atomic.Uint64 // by LatencyBuckets, the last for longer ones (not cumulative)
	sumNs       atomic.Uint64
}

func (s *appStats) observe(status int, took time.Duration) {
	c := status / 100
	if c >= len(s.byClass) {
		c = 0
	}
	s.byClass[c].Add(1)
	i, _ := slices.BinarySearch(LatencyBuckets, took)
	s.buckets[i].Add(1)
	s.sumNs.Add(uint64(max(took, 0)))
}

// AppStat is what a router counted of one app's requests since it first routed the app.
type AppStat struct {
	Tenant, App string
	ByClass     [6]uint64 // responses by status class: ByClass[2] counts 2xx, ByClass[0] odd ones
	// Buckets counts the requests that took at most LatencyBuckets[i] (cumulative), the last
	// one all of them.
	Buckets []uint64
	Sum     time.Duration // of every request's duration, head read to response written
}

// AppStats returns every routed app's counts, in no order.
func (r *Router) AppStats() []AppStat {
	t := r.table.Load()
	out := make([]AppStat, 0, len(t.routes))
	for _, rt := range t.routes {
		s := rt.stats
		a := AppStat{Tenant: s.tenant, App: s.app, Sum: time.Duration(s.sumNs.Load()), Buckets: make([]uint64, len(s.buckets))}
		for i := range s.byClass {
			a.ByClass[i] = s.byClass[i].Load()
		}
		var n uint64
		for i := range s.buckets {
			n += s.buckets[i].Load()
			a.Buckets[i] = n
		}
		out = append(out, a)
	}
	return out
}
