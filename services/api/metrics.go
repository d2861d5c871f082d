package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// apiMetrics counts the API's requests by route and status, and times them by route.
type apiMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// newAPIMetrics registers the API's own metrics on reg; nil without a registry.
func newAPIMetrics(reg *prometheus.Registry) (*apiMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "enjin_api_requests_total",
			Help: "Meta API requests answered, by route (the pattern that matched; none: no route) and status code."}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "enjin_api_request_duration_seconds",
			Help:    "How long the meta API took to answer, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe counts one answered request. The route is the pattern the mux matched (at most as
// many as there are routes), never the path a client sent.
func (m *apiMetrics) observe(r *http.Request, code int, took time.Duration) {
	if m == nil {
		return
	}
	route := r.Pattern
	if route == "" {
		route = "none"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(took.Seconds())
}

// metricsAccess is who may read /metrics: anyone when the API listens on loopback only
// (Config.MetricsOpen), else a reader.
func (a *API) metricsAccess() access {
	if a.metricsOpen {
		return public
	}
	return reader
}

// serveMetrics writes the registry's metrics in Prometheus' text exposition format.
func (a *API) serveMetrics(c *call) error {
	if a.metrics == nil {
		return &apiError{http.StatusNotFound, "not_found", "this ring 0 keeps no metrics"}
	}
	promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(c.w, c.r)
	return nil
}
