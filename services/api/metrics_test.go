package api_test

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"enjin/services/api"
)

// TestMetrics reads /metrics as Prometheus would, through its own text parser: requests are
// counted by the route that matched (a path nobody routes is "none", not the client's path)
// and status; without MetricsOpen a token is required (a wrong one, or none, is a 401 with
// a JSON body), with it anyone may read.
func TestMetrics(t *testing.T) {
	for _, open := range []bool{false, true} {
		reg := prometheus.NewRegistry()
		e := newEnvWith(t, api.Timeouts{}, func(c *api.Config) { c.Metrics, c.MetricsOpen = reg, open })
		e.do(t, "GET", "/v1/nodes", nil, "Authorization", asBob)
		e.do(t, "GET", "/v1/no/such/route?y=%3Cscript%3E", nil, "Authorization", asBob)
		if !open {
			for _, who := range []string{"", asWrong} {
				var hdr []string
				if who != "" {
					hdr = []string{"Authorization", who}
				}
				if r := e.do(t, "GET", "/metrics", nil, hdr...); r.status != 401 || r.json["error"] == nil {
					t.Fatalf("closed /metrics as %q: %d %s", who, r.status, r.body)
				}
			}
		}
		var r response
		if open {
			r = e.do(t, "GET", "/metrics", nil)
		} else {
			r = e.do(t, "GET", "/metrics", nil, "Authorization", asBob)
		}
		if r.status != 200 {
			t.Fatalf("/metrics (open %v): %d %s", open, r.status, r.body)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(bytes.NewReader(r.body))
		if err != nil {
			t.Fatalf("/metrics does not parse: %v\n%s", err, r.body)
		}
		got := map[string]float64{}
		for _, m := range fams["enjin_api_requests_total"].GetMetric() {
			got[label(m, "route")+" "+label(m, "code")] = m.GetCounter().GetValue()
		}
		if got["GET /v1/nodes 200"] != 1 || got["none 404"] != 1 || len(fams["enjin_api_request_duration_seconds"].GetMetric()) == 0 {
			t.Fatalf("open %v: requests counted %v, want GET /v1/nodes 200 and none 404 once each", open, got)
		}
		if !open && got["GET /metrics 401"] != 2 {
			t.Fatalf("the refused scrapes: %v", got)
		}
		t.Logf("open %v: %d families; requests by route and code: %v", open, len(fams), got)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
