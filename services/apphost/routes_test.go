package apphost

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"enjin/services/appapi"
)

// TestAPIRoutes: the app API serves exactly the routes of appapi's table, each by its
// operation's handler; a route without a handler, or a handler without a route, is refused
// by name. (Only routing is exercised, so no host is needed behind the handlers.)
func TestAPIRoutes(t *testing.T) {
	var h *Host
	a, err := newAPI("tok", h.handlers())
	if err != nil {
		t.Fatalf("the app API's own handlers: %v", err)
	}
	var want []string
	for _, r := range appapi.Routes() {
		want = append(want, r.Pattern())
	}
	if got := a.Patterns(); !slices.Equal(got, want) {
		t.Errorf("served patterns:\n  %s\nwant the table's:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for _, r := range appapi.Routes() {
		example := strings.NewReplacer("{tenant}", "acme", "{app}", "shop", "{proctype}", "web").Replace(r.Path)
		if _, p := a.mux.Handler(httptest.NewRequest(r.Method, example, nil)); p != r.Pattern() {
			t.Errorf("%s %s: routed to %q, want %q", r.Method, example, p, r.Pattern())
		}
	}

	missing := h.handlers()
	delete(missing, appapi.OpScale)
	if _, err := newAPI("tok", missing); err == nil || !strings.Contains(err.Error(), "route scale (PUT /v1/tenants/{tenant}/apps/{app}/scale/{proctype}) has no handler") {
		t.Errorf("without a handler for scale: %v", err)
	}
	extra := h.handlers()
	extra["reboot"] = http.NotFoundHandler()
	if _, err := newAPI("tok", extra); err == nil || !strings.Contains(err.Error(), "handler reboot has no route") {
		t.Errorf("with a handler for no route: %v", err)
	}
}

// TestAPIErrors: what no handler answers is JSON of the meta API's shape (appapi.Error), as
// every handler's error is: a wrong token, a path no route has, a method no route takes.
func TestAPIErrors(t *testing.T) {
	var h *Host
	a := h.Handler("tok")
	for _, c := range []struct {
		name, method, path, token string
		status                    int
		code, allow               string
	}{
		{"no token", "GET", "/v1/tenants/acme/apps", "", 401, "unauthorized", ""},
		{"wrong token", "GET", "/v1/tenants/acme/apps", "nope", 401, "unauthorized", ""},
		{"no route", "GET", "/v1/tenants/acme/vms", "tok", 404, "no_route", ""},
		{"no such method", "POST", "/v1/tenants/acme/apps/shop/env", "tok", 405, "method_not_allowed", "GET, HEAD, PATCH, PUT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, c.path, nil)
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, req)
			var e appapi.Error
			dec := json.NewDecoder(rec.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil || rec.Code != c.status || e.Code != c.code || e.Error == "" {
				t.Errorf("got %d %+v (%v), want %d with code %s", rec.Code, e, err, c.status, c.code)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if got := rec.Header().Get("Allow"); got != c.allow {
				t.Errorf("Allow %q, want %q", got, c.allow)
			}
		})
	}
}
