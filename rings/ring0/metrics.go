package ring0

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"enjin/bus"
)

// metrics are ring 0's figures in Prometheus' terms, served by the meta API at /metrics.
// Most are read, when scraped, from counters ring 0 keeps anyway; the acknowledgement
// latency and the revocations are counted as they happen.
type metrics struct {
	r        *Ring0
	ackDelay prometheus.Histogram // arrival → acknowledgement, of each observation acknowledged
	revoked  prometheus.Counter

	observations, refused, queued, retryAfter, nodes, leader *prometheus.Desc
}

// newMetrics makes ring 0's registry: its own figures, the Go runtime's and the process's.
func newMetrics(r *Ring0) (*metrics, *prometheus.Registry) {
	m := &metrics{r: r,
		ackDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "enjin_ingest_ack_delay_seconds",
			Help:    "From an observation's arrival to its acknowledgement, once its batch committed.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10}}),
		revoked: prometheus.NewCounter(prometheus.CounterOpts{Name: "enjin_revocations_total",
			Help: "Bus users revoked by this member (nodes decommissioned or rejoined, tenants' users)."}),
		observations: prometheus.NewDesc("enjin_ingest_observations_total",
			"Observations this member ingested, by outcome: committed (stored), acknowledged (told to their node), failed (a commit failed; not acknowledged), duplicate (a node's latest sent again: stored once, acknowledged again).", []string{"outcome"}, nil),
		refused: prometheus.NewDesc("enjin_ingest_refused_total",
			"Observations refused, by reason: overloaded (deferred with a retry-after), or why the signature check refused them.", []string{"reason"}, nil),
		queued:     prometheus.NewDesc("enjin_ingest_queued", "Observations waiting for verification.", nil, nil),
		retryAfter: prometheus.NewDesc("enjin_ingest_retry_after_seconds", "The wait a deferral asks for now.", nil, nil),
		nodes:      prometheus.NewDesc("enjin_nodes", "Nodes by the state ring 0 judges them in.", []string{"state"}, nil),
		leader:     prometheus.NewDesc("enjin_ring0_leader", "1 while this member (named by the label) leads: liveness, placement, promotion; else 0.", []string{"member"}, nil),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, m.ackDelay, m.revoked, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m, reg
}

// Describe sends the descriptors of the figures read at scrape time.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.observations, m.refused, m.queued, m.retryAfter, m.nodes, m.leader} {
		ch <- d
	}
}

// Collect reads the figures: the ingester's and verifier's counters, and the nodes' states
// from the store (an unanswered store leaves that figure out rather than hold the scrape).
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label)
	}
	if g := m.r.ingest; g != nil {
		counter(m.observations, g.committed.Load(), "committed")
		counter(m.observations, g.acked.Load(), "acknowledged")
		counter(m.observations, g.failed.Load(), "failed")
		counter(m.refused, g.deferred.Load(), "overloaded")
		ch <- prometheus.MustNewConstMetric(m.queued, prometheus.GaugeValue, float64(len(g.in)))
		ch <- prometheus.MustNewConstMetric(m.retryAfter, prometheus.GaugeValue, time.Duration(g.retryAfter.Load()).Seconds())
	}
	st := m.r.verify.Stats()
	counter(m.observations, st.Duplicates, "duplicate")
	for _, reason := range bus.Reasons() {
		counter(m.refused, st.Rejected[reason], reason.String())
	}
	member, epoch := m.r.Leadership()
	leads := 0.0
	if epoch > 0 {
		leads = 1
	}
	ch <- prometheus.MustNewConstMetric(m.leader, prometheus.GaugeValue, leads, member)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if states, err := m.r.store.NodeStates(ctx); err == nil {
		for _, s := range []string{"unknown", "up", "suspect", "down"} { // always there, 0 or not
			if _, ok := states[s]; !ok {
				states[s] = 0
			}
		}
		for s, n := range states {
			ch <- prometheus.MustNewConstMetric(m.nodes, prometheus.GaugeValue, float64(n), s)
		}
	}
}
