package ring1

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"enjin/services/apphost"
	"enjin/services/router"
)

// nodeMetrics are a ring 1 node's figures in Prometheus' terms, read when scraped: its
// heartbeats, its router's counts per app (requests by status class, durations), and each
// app instance's CPU, memory, restarts and state.
type nodeMetrics struct {
	n    *Node
	rt   *router.Router
	host *apphost.Host

	beats, appRequests, appDuration, upErrors, held, conns *prometheus.Desc
	cpu, mem, restarts, state                              *prometheus.Desc
}

func newNodeMetrics(n *Node, rt *router.Router, host *apphost.Host) *prometheus.Registry {
	inst := []string{"tenant", "app", "instance"}
	m := &nodeMetrics{n: n, rt: rt, host: host,
		beats:       prometheus.NewDesc("enjin_heartbeats_total", "Signed heartbeats this node sent, by outcome: acknowledged (stored by ring 0), unacknowledged (no answer in time), refused.", []string{"outcome"}, nil),
		appRequests: prometheus.NewDesc("enjin_app_requests_total", "Requests this node's router answered for an app, by status class.", []string{"tenant", "app", "class"}, nil),
		appDuration: prometheus.NewDesc("enjin_app_request_duration_seconds", "How long this node's router took to answer an app's requests, head read to response written.", []string{"tenant", "app"}, nil),
		upErrors:    prometheus.NewDesc("enjin_router_upstream_errors_total", "Dial, write, read or protocol failures of a backend.", nil, nil),
		held:        prometheus.NewDesc("enjin_router_held_total", "Requests held while no instance of their app could take them.", nil, nil),
		conns:       prometheus.NewDesc("enjin_router_connections", "Client connections open now.", nil, nil),
		cpu:         prometheus.NewDesc("enjin_instance_cpu_seconds_total", "CPU an app instance used since it started.", inst, nil),
		mem:         prometheus.NewDesc("enjin_instance_memory_bytes", "Memory an app instance's cgroup holds.", inst, nil),
		restarts:    prometheus.NewDesc("enjin_instance_restarts_total", "Times the watchdog restarted an app instance.", inst, nil),
		state:       prometheus.NewDesc("enjin_instance_state", "1 for an app instance's state now (starting, healthy, unhealthy, crashed, …).", append(inst, "state"), nil),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func (m *nodeMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.beats, m.appRequests, m.appDuration, m.upErrors, m.held, m.conns, m.cpu, m.mem, m.restarts, m.state} {
		ch <- d
	}
}

func (m *nodeMetrics) Collect(ch chan<- prometheus.Metric) {
	c := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, labels...)
	}
	c(m.beats, prometheus.CounterValue, float64(m.n.acked.Load()), "acknowledged")
	c(m.beats, prometheus.CounterValue, float64(m.n.unacked.Load()), "unacknowledged")
	c(m.beats, prometheus.CounterValue, float64(m.n.refused.Load()), "refused")
	st := m.rt.Stats()
	c(m.upErrors, prometheus.CounterValue, float64(st.UpstreamErrors))
	c(m.held, prometheus.CounterValue, float64(st.Held))
	c(m.conns, prometheus.GaugeValue, float64(st.Conns))
	for _, a := range m.rt.AppStats() {
		for class, n := range a.ByClass {
			name := strconv.Itoa(class) + "xx"
			if class == 0 {
				name = "other"
			}
			c(m.appRequests, prometheus.CounterValue, float64(n), a.Tenant, a.App, name)
		}
		buckets := make(map[float64]uint64, len(router.LatencyBuckets))
		for i, b := range router.LatencyBuckets {
			buckets[b.Seconds()] = a.Buckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(m.appDuration, a.Buckets[len(a.Buckets)-1], a.Sum.Seconds(), buckets, a.Tenant, a.App)
	}
	for _, f := range m.host.Figures() {
		l := []string{string(f.Tenant), f.App, f.Name}
		c(m.cpu, prometheus.CounterValue, f.CPUSeconds, l...)
		c(m.mem, prometheus.GaugeValue, float64(f.MemBytes), l...)
		c(m.restarts, prometheus.CounterValue, float64(f.Restarts), l...)
		c(m.state, prometheus.GaugeValue, 1, append(l, f.State)...)
	}
}

// withMetrics serves reg at GET /metrics beside api: to anyone if ln listens on loopback
// only, else to the holder of the app API's bearer token.
func withMetrics(api http.Handler, reg *prometheus.Registry, ln net.Listener, token string) http.Handler {
	open := false
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		open = a.IP.IsLoopback()
	}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if !open && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"a bearer token is required off loopback","code":"unauthorized"}` + "\n"))
			return
		}
		metrics.ServeHTTP(w, r)
	})
	return mux
}
