package test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"enjin"
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
	// Usage by compartment, through the CLI: a rack holding a node that has said nothing yet.
	var comp struct{ ID string }
	if err := json.Unmarshal([]byte(c.cli("compartments", "create", "--type", "rack", "--label", "rack-1", "-o", "json")), &comp); err != nil || comp.ID == "" {
		t.Fatalf("compartments create: %v", err)
	}
	if code, b := c.apiDo("POST", "/v1/nodes", map[string]any{"id": "edge-1", "ring": 1, "supervision_strategy": "external",
		"observation_strategy": "self", "compartment": comp.ID}); code != 201 {
		t.Fatalf("register edge-1: %d %s", code, b)
	}
	if out := c.cli("compartments", "usage", comp.ID); !strings.Contains(out, "edge-1") || !strings.Contains(out, "all 1 (0 up, 0 reporting)") {
		t.Fatalf("compartments usage:\n%s", out)
	}
	hs := h[0].GetHistogram()
	t.Logf("%d families; %v observations acknowledged, mean ack delay %.1f ms; nodes up %v",
		len(fams), value(fams, "enjin_ingest_observations_total", "outcome", "acknowledged"),
		1000*hs.GetSampleSum()/float64(hs.GetSampleCount()), value(fams, "enjin_nodes", "state", "up"))
}

// TestRing1Metrics scrapes ring1-local's /metrics (on its app API, loopback: no token) with
// Prometheus' parser once an app served requests through its router: the app's requests by
// status class and their durations, each instance's CPU, memory, restarts and state, and the
// node's acknowledged heartbeats; `enjin apps ps` shows CPU and memory too.
func TestRing1Metrics(t *testing.T) {
	c := newCloud(t)
	c.start()
	c.deploySamples("acme/web")
	for range 20 {
		if code, _ := c.get("acme/web"); code != 200 {
			t.Fatalf("acme/web: %d", code)
		}
	}
	c.get("acme/nosuch") // no app's: counted for none
	base := appsAPIOf(t, c, "ring1-local")
	fams := scrape(t, base+"/metrics")
	if value(fams, "enjin_app_requests_total", "app", "nosuch") != -1 {
		t.Fatalf("a host nobody routes has figures: %v", fams["enjin_app_requests_total"])
	}
	var ok200 float64 = -1
	for _, m := range fams["enjin_app_requests_total"].GetMetric() {
		if label(m, "tenant") == "acme" && label(m, "app") == "web" && label(m, "class") == "2xx" {
			ok200 = m.GetCounter().GetValue()
		}
	}
	if ok200 != 20 {
		t.Fatalf("acme/web's 2xx through the router: %v, want 20 (%v)", ok200, fams["enjin_app_requests_total"])
	}
	var hist *dto.Histogram
	for _, m := range fams["enjin_app_request_duration_seconds"].GetMetric() {
		if label(m, "app") == "web" {
			hist = m.GetHistogram()
		}
	}
	if hist == nil || hist.GetSampleCount() != 20 || hist.GetSampleSum() <= 0 {
		t.Fatalf("acme/web's durations: %v", hist)
	}
	if v := value(fams, "enjin_instance_memory_bytes", "instance", "web.0"); v <= 0 {
		t.Fatalf("web.0's memory: %v", v)
	}
	if v := value(fams, "enjin_instance_state", "state", "healthy"); v != 1 {
		t.Fatalf("web.0's state: %v", fams["enjin_instance_state"])
	}
	for _, name := range []string{"enjin_instance_cpu_seconds_total", "enjin_instance_restarts_total", "enjin_router_connections", "go_goroutines"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	if value(fams, "enjin_heartbeats_total", "outcome", "acknowledged") < 1 {
		t.Errorf("heartbeats: %v", fams["enjin_heartbeats_total"])
	}
	if out := c.cli("apps", "ps", "acme/web"); !strings.Contains(out, "CPU") || !strings.Contains(out, "MEM") || !strings.Contains(out, "M ") {
		t.Errorf("apps ps without CPU and memory:\n%s", out)
	}
	t.Logf("ring1-local: %d families; acme/web 20×2xx, mean %.2f ms; web.0 holds %.1f MiB", len(fams),
		1000*hist.GetSampleSum()/float64(hist.GetSampleCount()), value(fams, "enjin_instance_memory_bytes", "instance", "web.0")/(1<<20))
}

// appsAPIOf is the app API node names in its last own observation.
func appsAPIOf(t *testing.T, c *cloud, node string) string {
	t.Helper()
	var r struct {
		Observations []struct {
			Payload string `json:"payload"`
		} `json:"observations"`
	}
	b, err := c.apiGet("/v1/nodes/" + node + "/observations?limit=1")
	if err != nil || json.Unmarshal(b, &r) != nil || len(r.Observations) != 1 {
		t.Fatalf("%s's last observation: %v %s", node, err, b)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(r.Observations[0].Payload)
	var obs enjin.Observation
	if err := json.Unmarshal(payload, &obs); err != nil || obs.AppsAPI == "" {
		t.Fatalf("%s names no app API: %v %s", node, err, payload)
	}
	return obs.AppsAPI
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
