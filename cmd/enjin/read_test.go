package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// answers serves a fixed JSON body per path.
func answers(m map[string]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, ok := m[r.URL.Path]
		if !ok {
			w.WriteHeader(404)
			io.WriteString(w, `{"error":"no such thing"}`)
			return
		}
		io.WriteString(w, b)
	}
}

func TestTablesAreAligned(t *testing.T) {
	api := newFakeAPI(t, answers(map[string]string{
		"/v1/nodes": `{"nodes":[{"id":"ring1-local","ring":1,"state":"up","supervision_strategy":"process","label":"local ring 1","last_observation_at":"2026-01-02T03:04:05Z"},
			{"id":"edge-1","ring":1,"state":"down","supervision_strategy":"external"}]}`,
		"/v1/tenants/acme/apps/hello/instances": `{"instances":[{"id":"hello-1-web-1","type":"web","release":1,"address":"100.88.0.2","port":8080,"state":"healthy","restarts":0},
			{"id":"hello-1-worker-10","type":"worker","release":12,"address":"100.88.0.13","port":8080,"state":"starting","restarts":3}]}`,
		"/v1/tenants/acme/apps/hello/releases": `{"releases":[{"number":1,"digest":"sha256-aaaaaaaaaaaaaaaaaaaa","status":"superseded","created":"2026-01-02T03:04:05Z","manifest":{"instances":{"web":1}}},
			{"number":12,"digest":"sha256-bbbbbbbbbbbbbbbbbbbb","status":"live","created":"2026-01-02T03:04:05Z","manifest":{"instances":{"web":2,"worker":1}}}]}`,
		"/v1/tenants":           `{"tenants":[{"id":"acme","hosts":[{"node":"ring1-local"}]},{"id":"a-much-longer-tenant","hosts":[]}]}`,
		"/v1/compartments":      `{"compartments":[{"id":"0b7f","type":"rack","ring":0,"label":"rack-1","parents":[]},{"id":"1c2d3e","type":"power-feed","ring":1,"label":"feed","parents":["0b7f"]}]}`,
		"/v1/tenants/acme/apps": `{"apps":[{"tenant":"acme","name":"hello","release":12,"instances":{"web":2,"worker":1}}]}`,
	}))
	useAPI(t, api)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"nodes"}, []string{"ID", "ring1-local", "edge-1", "never"}},
		{[]string{"apps", "ps", "acme/hello"}, []string{"INSTANCE", "100.88.0.13:8080", "starting"}},
		{[]string{"apps", "releases", "acme/hello"}, []string{"RELEASE", "sha256-bbbbbbbbbbbb ", "web=2 worker=1"}},
		{[]string{"tenants", "ls"}, []string{"TENANT", "ring1-local"}},
		{[]string{"compartments", "ls"}, []string{"power-feed", "0b7f"}},
		{[]string{"apps", "ls", "acme"}, []string{"acme/hello", "web=2 worker=1"}},
	} {
		out, errOut, code := enjinIn(t, "", tc.args...)
		if code != 0 {
			t.Errorf("%q: exit %d, stderr %q", tc.args, code, errOut)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: no %q in\n%s", tc.args, w, out)
			}
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		col := secondColumn(lines[0])
		for _, l := range lines[1:] {
			if got := secondColumn(l); got != col {
				t.Errorf("%q: second column at %d in %q, at %d in the header:\n%s", tc.args, got, l, col, out)
			}
		}
	}
}

// secondColumn is where the second column of a table line starts: after the first run of two
// spaces or more.
func secondColumn(l string) int {
	i := strings.Index(l, "  ")
	if i < 0 {
		return -1
	}
	return i + len(l[i:]) - len(strings.TrimLeft(l[i:], " "))
}

func TestJSONOutput(t *testing.T) {
	api := newFakeAPI(t, answers(map[string]string{
		"/v1/nodes":                            `{"nodes":[{"id":"n1","ring":1,"state":"up"}]}`,
		"/v1/compartments/0b7f":                `{"id":"0b7f","type":"rack","ring":0,"label":"rack-1","parents":[],"version":3}`,
		"/v1/tenants/acme":                     `{"id":"acme","hosts":[],"version":2}`,
		"/v1/tenants/acme/apps/hello/releases": `{"releases":[]}`,
	}))
	useAPI(t, api)
	for _, args := range [][]string{
		{"nodes", "-o", "json"}, {"compartments", "show", "0b7f", "-o", "json"}, {"tenants", "show", "acme", "--output=json"},
		{"apps", "releases", "acme/hello", "-o", "json"},
	} {
		out, errOut, code := enjinIn(t, "", args...)
		var v map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &v) != nil || len(v) == 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want a JSON object", args, code, out, errOut)
		}
	}
	out, _, _ := enjinIn(t, "", "compartments", "show", "0b7f")
	if !strings.Contains(out, "label") || !strings.Contains(out, "rack-1") || strings.Contains(out, "{") {
		t.Errorf("compartments show as a table:\n%s", out)
	}
}

func TestLogs(t *testing.T) {
	lines := `{"time":"2026-01-02T03:04:05.123Z","instance":"hello-1-web-1","stream":"stdout","line":"listening"}` + "\n\n" +
		`{"time":"2026-01-02T03:04:06Z","instance":"hello-1-web-1","stream":"stderr","line":"request GET /"}` + "\n"
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, lines) })
	useAPI(t, api)
	out, errOut, code := enjinIn(t, "", "logs", "acme/hello", "-o", "json")
	if want := strings.ReplaceAll(lines, "\n\n", "\n"); code != 0 || out != want {
		t.Errorf("logs -o json: exit %d, stdout %q, stderr %q; want the lines as sent", code, out, errOut)
	}
	out, _, code = enjinIn(t, "", "logs", "acme/hello")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, "hello-1-web-1[stderr]: request GET /\n") {
		t.Errorf("logs: exit %d, stdout %q", code, out)
	}
	r := api.requests()
	if len(r) != 2 || r[1].Path != "/v1/tenants/acme/apps/hello/logs" || r[1].Query != "lines=100" {
		t.Errorf("requests %+v; want GET …/logs?lines=100", r)
	}
}

func TestVerifyJSON(t *testing.T) {
	api := newFakeAPI(t, answers(map[string]string{
		"/v1/nodes":                 `{"nodes":[{"id":"n1","attest_pub":"KEY-NOW"}]}`,
		"/v1/nodes/n1/observations": `{"observations":[{"node":"n1","seq":7,"ts_ns":1,"signer":"KEY-UNKNOWN","sig":"","payload":""}]}`,
		"/v1/history/node/n1":       `{"history":[]}`,
		"/v1/placements":            `{"placements":[{"tenant":"acme","app":"web","node":"n1","bid":null}]}`,
	}))
	useAPI(t, api)
	out, errOut, code := enjinIn(t, "", "verify", "-o", "json")
	var s verifySummary
	if err := json.Unmarshal([]byte(out), &s); err != nil || code != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q: %v", code, out, errOut, err)
	}
	if s.Nodes != 1 || s.Observations != 1 || s.Placements != 1 || s.Failed != 2 || len(s.Failures) != 2 || s.Failures[0].Seq != 7 ||
		s.Failures[1].App != "acme/web" || s.Failures[1].Reason != "no bid stored" ||
		errOut != "enjin: 2 failed verification (of 1 observations and 1 placements)\n" {
		t.Errorf("summary %+v, stderr %q", s, errOut)
	}
}
