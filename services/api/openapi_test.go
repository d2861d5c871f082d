package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"enjin/services/api"
	"enjin/services/inventory"
)

// TestOpenAPIMatchesMux checks the document served at /openapi.json against the mux: every
// registered pattern is documented, every documented operation is routed by the mux to
// exactly that pattern, and the document is self-consistent.
func TestOpenAPIMatchesMux(t *testing.T) {
	// The document is built and served without touching the store.
	a, err := api.New(api.Config{Store: &inventory.Store{}, Ring0: &testRing0{}, Checkers: checkers(t)})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %s", rec.Code, rec.Body)
	}
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas         map[string]any `json:"schemas"`
			SecuritySchemes map[string]any `json:"securitySchemes"`
		} `json:"components"`
	}
	raw := rec.Body.Bytes()
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") || doc.Components.SecuritySchemes["bearer"] == nil || doc.Components.SecuritySchemes["basic"] == nil {
		t.Errorf("openapi %q, security schemes %v: want 3.0 with bearer and basic", doc.OpenAPI, doc.Components.SecuritySchemes)
	}

	var documented []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			pattern := strings.ToUpper(method) + " " + path
			documented = append(documented, pattern)
			if got := api.MuxPattern(a, httptest.NewRequest(strings.ToUpper(method), example(path), nil)); got != pattern {
				t.Errorf("documented %s: the mux routes it to %q", pattern, got)
			}
			checkOperation(t, pattern, op)
		}
	}
	registered := api.Patterns(a)
	slices.Sort(documented)
	slices.Sort(registered)
	if !slices.Equal(documented, registered) {
		t.Errorf("documented operations:\n  %s\nregistered patterns:\n  %s", strings.Join(documented, "\n  "), strings.Join(registered, "\n  "))
	}
	if len(registered) < 24 {
		t.Errorf("%d routes registered; the API has at least 24", len(registered))
	}

	// Every reference resolves.
	for _, ref := range refs(raw) {
		name, ok := strings.CutPrefix(ref, "#/components/schemas/")
		if !ok || doc.Components.Schemas[name] == nil {
			t.Errorf("dangling $ref %q", ref)
		}
	}
}

// example fills a documented path's wildcards with valid values.
func example(path string) string {
	return strings.NewReplacer("{node}", "n1", "{compartment}", inventory.NewID(), "{tier}", inventory.NewID(),
		"{kind}", "node", "{id}", "n1", "{tenant}", "acme", "{app}", "web", "{proctype}", "web").Replace(path)
}

func checkOperation(t *testing.T, pattern string, op map[string]any) {
	t.Helper()
	params, _ := op["parameters"].([]any)
	for _, w := range strings.Split(pattern, "{")[1:] {
		name, _, _ := strings.Cut(w, "}")
		if !slices.ContainsFunc(params, func(p any) bool {
			m := p.(map[string]any)
			return m["in"] == "path" && m["name"] == name && m["required"] == true
		}) {
			t.Errorf("%s: path parameter %s undocumented", pattern, name)
		}
	}
	responses, _ := op["responses"].(map[string]any)
	if len(responses) < 2 || responses["400"] == nil {
		t.Errorf("%s: responses %v: want a success and the errors", pattern, responses)
	}
	if op["summary"] == "" || op["operationId"] == "" {
		t.Errorf("%s: no summary or operationId", pattern)
	}
	public := strings.HasSuffix(pattern, " /healthz") || strings.HasSuffix(pattern, " /openapi.json") || strings.HasSuffix(pattern, " /v1/join") ||
		strings.Contains(pattern, " /ui") // the web view: its own login and session

	if sec, ok := op["security"].([]any); public != (ok && len(sec) == 0) {
		t.Errorf("%s: security %v; public=%v", pattern, op["security"], public)
	}
	if strings.HasPrefix(pattern, "POST") && !strings.Contains(pattern, "join-token") && !strings.Contains(pattern, "promote") && !strings.Contains(pattern, "reboot") && !strings.HasSuffix(pattern, "/system/backups") && !strings.HasSuffix(pattern, "/ui/logout") {
		if rb, _ := op["requestBody"].(map[string]any); rb == nil || rb["required"] != true {
			t.Errorf("%s: request body %v: want a required body", pattern, op["requestBody"])
		}
	}
}

// refs lists every "$ref" value in a JSON document.
func refs(raw []byte) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && k == "$ref" {
					out = append(out, s)
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	var v any
	_ = json.Unmarshal(raw, &v)
	walk(v)
	return out
}

// TestOpenAPIAppEnv checks the document describes the app environment routes: reading with
// reveal (0 or 1, and who may), changing with a JSON body, both refusable with 403.
func TestOpenAPIAppEnv(t *testing.T) {
	a, err := api.New(api.Config{Store: &inventory.Store{}, Ring0: &testRing0{}, Checkers: checkers(t)})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name, In, Description string
				Schema                map[string]any
			}
			RequestBody struct {
				Content map[string]any
			}
			Responses map[string]any
			Admin     bool `json:"x-enjin-admin"`
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	env := doc.Paths["/v1/tenants/{tenant}/apps/{app}/env"]
	get, patch := env["get"], env["patch"]
	i := slices.IndexFunc(get.Parameters, func(p struct {
		Name, In, Description string
		Schema                map[string]any
	}) bool {
		return p.Name == "reveal" && p.In == "query"
	})
	switch {
	case i < 0:
		t.Fatalf("GET env: no reveal parameter in %+v", get.Parameters)
	case get.Parameters[i].Schema["minimum"] != 0.0 || get.Parameters[i].Schema["maximum"] != 1.0 ||
		!strings.Contains(get.Parameters[i].Description, "only the admin and the tenant"):
		t.Errorf("GET env reveal: %+v", get.Parameters[i])
	case get.Admin || get.Responses["403"] == nil:
		t.Errorf("GET env: admin %v, responses %v: want readable by readers, 403 documented", get.Admin, get.Responses)
	}
	if !patch.Admin || patch.RequestBody.Content["application/json"] == nil || patch.Responses["403"] == nil {
		t.Errorf("PATCH env: admin %v, body %v, responses %v: want admin, a JSON body, 403", patch.Admin, patch.RequestBody, patch.Responses)
	}
	if env["put"].RequestBody.Content == nil {
		t.Errorf("PUT env is gone")
	}
}

// TestOpenAPIDecommission checks the document describes decommissioning a node: admin only,
// If-Match required, the node answered with its ETag, and the refusals.
func TestOpenAPIDecommission(t *testing.T) {
	a, err := api.New(api.Config{Store: &inventory.Store{}, Ring0: &testRing0{}, Checkers: checkers(t)})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	var doc struct {
		Paths map[string]map[string]struct {
			Admin      bool `json:"x-enjin-admin"`
			Parameters []struct {
				Name     string
				In       string
				Required bool
			}
			Responses map[string]struct {
				Headers map[string]any
			}
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	del, ok := doc.Paths["/v1/nodes/{node}"]["delete"]
	if !ok || !del.Admin {
		t.Fatalf("DELETE /v1/nodes/{node}: %+v, want an admin operation", del)
	}
	if !slices.ContainsFunc(del.Parameters, func(p struct {
		Name     string
		In       string
		Required bool
	}) bool {
		return p.Name == "If-Match" && p.In == "header" && p.Required
	}) {
		t.Errorf("parameters %+v: want If-Match required", del.Parameters)
	}
	if del.Responses["200"].Headers["ETag"] == nil {
		t.Errorf("200: no ETag documented")
	}
	for _, code := range []string{"401", "403", "404", "409", "422", "428"} {
		if _, ok := del.Responses[code]; !ok {
			t.Errorf("%s undocumented", code)
		}
	}
}
