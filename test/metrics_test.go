package test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"enjin/test/harness"
)

// TestRing0Metrics scrapes ring 0's /metrics as `enjin up` runs it — on loopback, so without
// a token — through Prometheus' own text parser: observations committed and acknowledged
// with their acknowledgement delays, refusals by reason, the nodes by state (ring1-local up),
// which member leads, the API's requests by route, and the Go runtime's figures.
func TestRing0Metrics(t *testing.T) {
	c := newCloud(t)
	c.start()
	var fams map[string]*dto.MetricFamily
	if !harness.Poll(30*time.Second, func() bool {
		fams = scrape(t, c.ep.API+"/metrics")
		return value(fams, "enjin_ingest_observations_total", "outcome", "acknowledged") >= 3 &&
			value(fams, "enjin_nodes", "state", "up") >= 1
	}) {
		t.Fatalf("no acknowledged observations or no node up in /metrics: %v", fams)
	}
	h := fams["enjin_ingest_ack_delay_seconds"].GetMetric()
	if len(h) != 1 || h[0].GetHistogram().GetSampleCount() == 0 {
		t.Fatalf("ack delay histogram: %v", h)
	}
	for _, name := range []string{"enjin_ingest_refused_total", "enjin_revocations_total", "enjin_ring0_leader",
		"enjin_ingest_queued", "enjin_api_requests_total", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s in /metrics", name)
		}
	}
	if value(fams, "enjin_ingest_refused_total", "reason", "bad-signature") != 0 || value(fams, "enjin_ring0_leader", "", "") != 1 {
		t.Errorf("refusals or leadership: %v %v", fams["enjin_ingest_refused_total"], fams["enjin_ring0_leader"])
	}
	hs := h[0].GetHistogram()
	t.Logf("%d families; %v observations acknowledged, mean ack delay %.1f ms; nodes up %v",
		len(fams), value(fams, "enjin_ingest_observations_total", "outcome", "acknowledged"),
		1000*hs.GetSampleSum()/float64(hs.GetSampleCount()), value(fams, "enjin_nodes", "state", "up"))
}

// scrape GETs a Prometheus text exposition and parses it.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s does not parse: %v", url, err)
	}
	return fams
}

// value is the counter's or gauge's value of the first metric of family name whose label
// key is val (key "": the first metric); -1 if there is none.
func value(fams map[string]*dto.MetricFamily, name, key, val string) float64 {
	for _, m := range fams[name].GetMetric() {
		if key != "" && label(m, key) != val {
			continue
		}
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
