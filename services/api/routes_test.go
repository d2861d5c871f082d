package api_test

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"enjin/services/inventory"
)

// A step is one request of the route table test. Steps run in order against one API, so
// later steps use what earlier ones created: {name} in path, body and header values is
// replaced by a variable an earlier step saved.
type step struct {
	name   string
	method string
	path   string
	auth   string   // Authorization value; "" sends none
	hdr    []string // more header name/value pairs (names may repeat)
	body   string
	status int
	code   string            // the error code wanted, for errors
	save   map[string]string // variable ← dotted JSON path in the response, or "@etag", "@location"
	check  func(t *testing.T, r response, vars map[string]string)
	before func(t *testing.T, vars map[string]string) // runs first, for setup outside the API
	page   string                                     // a web view answer, not JSON: its media type ("-": no content)
}

// routeSteps are the steps through every route of the meta API's own (not the app, image
// and VM routes) and their error paths, in the order they build on each other.
func routeSteps(e *env) []step {
	var steps []step
	steps = append(steps, generalSteps()...)
	steps = append(steps, compartmentSteps()...)
	steps = append(steps, tenantSteps()...)
	steps = append(steps, tenantTokenSteps()...)
	steps = append(steps, networkSteps()...)
	steps = append(steps, rulesetSteps()...)
	steps = append(steps, nodeSteps(e)...)
	steps = append(steps, joinSteps()...)
	steps = append(steps, tierSteps(e)...)
	steps = append(steps, decommissionSteps(e)...)
	return steps
}

// runSteps runs steps in order, each a subtest; a failed step whose answer later steps read
// ends the test.
func runSteps(t *testing.T, e *env, steps []step) {
	t.Helper()
	vars := map[string]string{"nouuid": inventory.NewID()}
	for i, s := range steps {
		ok := t.Run(fmt.Sprintf("%03d %s", i, s.name), func(t *testing.T) { e.run(t, s, vars) })
		if !ok && s.save != nil {
			t.Fatalf("step %q saves variables later steps need; stopping", s.name)
		}
	}
}

// TestRoutes walks every route and its error paths.
func TestRoutes(t *testing.T) {
	e := newEnv(t)
	runSteps(t, e, routeSteps(e))
	if n := e.panics.Load(); n != 0 {
		t.Fatalf("%d panics recovered, want 0", n)
	}

	// The recover middleware: a panic deep in a handler is a logged, counted 500 in JSON.
	e.ring0.panicOn = "boom"
	r := e.do(t, "POST", "/v1/creds/ops", []byte(`{"name":"boom"}`), "Authorization", asAdmin)
	if r.status != http.StatusInternalServerError || str(r.json, "code") != "internal" || e.panics.Load() != 1 {
		t.Fatalf("panicking handler: got %d %s (%d panics) want 500 internal (1 panic)", r.status, r.body, e.panics.Load())
	}
}

var placeholder = regexp.MustCompile(`\{[a-z0-9]+\}`)

func expand(s string, vars map[string]string) string {
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := vars[m[1:len(m)-1]]; ok {
			return v
		}
		return m // a path wildcard of the route, left for the test to show
	})
}

func (e *env) run(t *testing.T, s step, vars map[string]string) {
	if s.before != nil {
		s.before(t, vars)
	}
	var hdr []string
	if s.auth != "" {
		hdr = append(hdr, "Authorization", s.auth)
	}
	for i := 0; i+1 < len(s.hdr); i += 2 {
		hdr = append(hdr, s.hdr[i], expand(s.hdr[i+1], vars))
	}
	if s.body != "" && !strings.Contains(strings.ToLower(strings.Join(s.hdr, "\n")), "content-type") {
		hdr = append(hdr, "Content-Type", "application/json")
	}
	var body []byte
	if s.body != "" {
		body = []byte(expand(s.body, vars))
	}
	method := s.method
	r := e.do(t, method, expand(s.path, vars), body, hdr...)
	if r.status != s.status {
		t.Fatalf("%s %s: got %d %s want %d", method, s.path, r.status, r.body, s.status)
	}
	if s.page != "" {
		checkPage(t, r, s.page)
	} else {
		checkShape(t, method, r, s.status)
	}
	if s.code != "" && str(r.json, "code") != s.code {
		t.Errorf("got code %q (%s) want %q", str(r.json, "code"), str(r.json, "error"), s.code)
	}
	for name, path := range s.save {
		switch path {
		case "@etag":
			vars[name] = r.header.Get("ETag")
		case "@location":
			vars[name] = r.header.Get("Location")
		default:
			vars[name] = str(r.json, path)
		}
		if vars[name] == "" {
			t.Fatalf("nothing at %s to save as %s in %s", path, name, r.body)
		}
	}
	if s.check != nil {
		s.check(t, r, vars)
	}
}

// checkShape checks what every response must be: JSON (but the few successes that are text,
// bytes or JSON lines), never a 5xx but the one wanted (ring 1's, forwarded), errors with a
// message and a code.
func checkShape(t *testing.T, method string, r response, want int) {
	t.Helper()
	if r.status >= 500 && r.status != want {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	ct := r.header.Get("Content-Type")
	if r.status < 400 && slices.ContainsFunc([]string{"text/plain", "application/octet-stream", "application/x-ndjson"}, func(p string) bool { return strings.HasPrefix(ct, p) }) {
		return // TestResponseSchemas checks each against its route's declared type
	}
	if ct != "application/json" && r.status != http.StatusNoContent {
		t.Errorf("Content-Type %q want application/json", ct)
	}
	if r.status == http.StatusNoContent || method == http.MethodHead {
		return
	}
	if !json.Valid(r.body) {
		t.Errorf("body is not JSON: %q", r.body)
	}
	if r.status >= 400 && (str(r.json, "error") == "" || str(r.json, "code") == "") {
		t.Errorf("error body %s lacks error or code", r.body)
	}
	if r.status >= 400 && strings.Contains(str(r.json, "error"), "\n") {
		t.Errorf("error message spans lines: %q", str(r.json, "error"))
	}
}

// checkPage checks an answer of the web view: of media type page, or with no content if
// page is "-"; never a 5xx.
func checkPage(t *testing.T, r response, page string) {
	t.Helper()
	if r.status >= 500 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	ct := r.header.Get("Content-Type")
	if page == "-" {
		if ct != "" || len(r.body) != 0 {
			t.Errorf("Content-Type %q and %d bytes, want no content", ct, len(r.body))
		}
		return
	}
	if mt, _, _ := mime.ParseMediaType(ct); mt != page || len(r.body) == 0 {
		t.Errorf("Content-Type %q and %d bytes, want %s", ct, len(r.body), page)
	}
}

// want returns a check that dotted path in the response has value v (after expansion).
func want(pairs ...string) func(*testing.T, response, map[string]string) {
	return func(t *testing.T, r response, vars map[string]string) {
		t.Helper()
		for i := 0; i+1 < len(pairs); i += 2 {
			if got, w := str(r.json, pairs[i]), expand(pairs[i+1], vars); got != w {
				t.Errorf("%s: got %q want %q in %s", pairs[i], got, w, r.body)
			}
		}
	}
}

// wantHeader returns a check that header name has value v (after expansion).
func wantHeader(name, v string) func(*testing.T, response, map[string]string) {
	return func(t *testing.T, r response, vars map[string]string) {
		t.Helper()
		if got := r.header.Get(name); got != expand(v, vars) {
			t.Errorf("%s: got %q want %q", name, got, expand(v, vars))
		}
	}
}

func count(key string, n int) func(*testing.T, response, map[string]string) {
	return func(t *testing.T, r response, _ map[string]string) {
		t.Helper()
		if l, _ := r.json[key].([]any); len(l) != n {
			t.Errorf("%d %s want %d: %s", len(l), key, n, r.body)
		}
	}
}

func generalSteps() []step {
	return []step{
		{name: "health", method: "GET", path: "/healthz", status: 200, check: want("status", "ok")},
		{name: "health takes no query", method: "GET", path: "/healthz?x=1", status: 400, code: "bad_query"},
		{name: "openapi", method: "GET", path: "/openapi.json", status: 200, check: want("openapi", "3.0.3")},
		{name: "leader: none ever led", method: "GET", path: "/v1/leader", auth: asBob, status: 200, check: want("epoch", "0", "this_member", "test", "leading", "false")},
		{name: "leader needs a reader", method: "GET", path: "/v1/leader", status: 401, code: "unauthorized"},
		{name: "members: none announced", method: "GET", path: "/v1/members", auth: asBob, status: 200, check: count("members", 0)},
		{name: "members need a reader", method: "GET", path: "/v1/members", status: 401, code: "unauthorized"},
		{name: "members take no query", method: "GET", path: "/v1/members?all=1", auth: asBob, status: 400, code: "bad_query"},
		{name: "placements: none yet", method: "GET", path: "/v1/placements", auth: asBob, status: 200, check: count("placements", 0)},
		{name: "placements need a reader", method: "GET", path: "/v1/placements", status: 401, code: "unauthorized"},
		{name: "a member's token that is no member's", method: "GET", path: "/v1/members", hdr: []string{"Authorization", "Bearer not-any-members-admin-token"}, status: 401, code: "unauthorized"},
		{name: "unknown route", method: "GET", path: "/nope", status: 404, code: "no_route"},
		{name: "unknown route under v1", method: "GET", path: "/v1/nodes/n1/nope", auth: asAdmin, status: 404, code: "no_route"},
		{name: "wrong method", method: "PUT", path: "/v1/nodes", auth: asAdmin, status: 405, code: "method_not_allowed",
			check: wantHeader("Allow", "GET, HEAD, POST")},
		{name: "unclean path redirects", method: "GET", path: "/v1//nodes", status: 307, code: "redirect",
			check: wantHeader("Location", "/v1/nodes")},
		{name: "no credentials", method: "GET", path: "/v1/nodes", status: 401, code: "unauthorized",
			check: func(t *testing.T, r response, _ map[string]string) {
				if len(r.header.Values("WWW-Authenticate")) != 2 {
					t.Errorf("WWW-Authenticate %q: want Bearer and Basic challenges", r.header.Values("WWW-Authenticate"))
				}
			}},
		{name: "two Authorization headers", method: "GET", path: "/v1/nodes", hdr: []string{"Authorization", asAdmin, "Authorization", asAdmin},
			status: 400, code: "bad_request"},
		{name: "wrong token", method: "GET", path: "/v1/nodes", auth: asWrong, status: 401, code: "unauthorized"},
		{name: "wrong password", method: "GET", path: "/v1/nodes", auth: asBadPw, status: 401},
		{name: "unknown user", method: "GET", path: "/v1/nodes", auth: asNobody, status: 401},
		{name: "unknown scheme", method: "GET", path: "/v1/nodes", auth: "Digest username=x", status: 401},
		{name: "malformed basic", method: "GET", path: "/v1/nodes", auth: "Basic !!!", status: 401},
		{name: "empty bearer", method: "GET", path: "/v1/nodes", auth: "Bearer", status: 401},
		{name: "reader reads", method: "GET", path: "/v1/nodes", auth: asBob, status: 200, check: count("nodes", 0)},
		{name: "reader reads again (cached)", method: "HEAD", path: "/v1/nodes", auth: asBob, status: 200},
		{name: "htpasswd admin reads", method: "GET", path: "/v1/nodes", auth: asAlice, status: 200},
		{name: "lowercase scheme", method: "GET", path: "/v1/nodes", auth: "bearer " + adminToken, status: 200},
		{name: "reader may not write", method: "POST", path: "/v1/compartments", auth: asBob, body: `{"ring":1,"type":"row"}`,
			status: 403, code: "forbidden"},
		{name: "ops creds", method: "POST", path: "/v1/creds/ops", auth: asAdmin, body: `{"name":"ops-alice"}`, status: 200,
			check: func(t *testing.T, r response, _ map[string]string) {
				if !strings.Contains(str(r.json, "creds"), "jwt-of-ops-alice") {
					t.Errorf("creds %q", str(r.json, "creds"))
				}
			}},
		{name: "ops creds bad name", method: "POST", path: "/v1/creds/ops", auth: asAdmin, body: `{"name":"Ops Alice"}`, status: 422, code: "invalid"},
		{name: "ops creds by reader", method: "POST", path: "/v1/creds/ops", auth: asBob, body: `{"name":"x"}`, status: 403},
		{name: "ops creds anonymous", method: "POST", path: "/v1/creds/ops", body: `{"name":"x"}`, status: 401},
	}
}
