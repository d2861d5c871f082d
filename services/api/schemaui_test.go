package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"enjin/services/webui"
)

// uiSteps drive the web view's routes: its pages, redirects, login form, files and event
// stream, with and without a session.
func uiSteps() []step {
	const html, form = "text/html", "application/x-www-form-urlencoded"
	login := func(name string, v url.Values, status int, page string, hdr ...string) step {
		return step{name: name, method: "POST", path: "/ui/login", hdr: append([]string{"Content-Type", form}, hdr...),
			body: v.Encode(), status: status, page: page}
	}
	session := []string{"Cookie", webui.CookieName + "={session}"}
	return []step{
		{name: "web view without a session", method: "GET", path: "/ui", status: 303, page: html, check: wantHeader("Location", "/ui/login")},
		{name: "web view with a query it does not take", method: "GET", path: "/ui?x=1", status: 400},
		{name: "login page", method: "GET", path: "/ui/login", status: 200, page: html},
		{name: "login page with a query it does not take", method: "GET", path: "/ui/login?x=1", status: 400},
		login("log in with a wrong token", url.Values{"token": {"not-the-token-at-all"}}, 401, html),
		login("log in from another site", url.Values{"token": {adminToken}}, 403, html, "Origin", "https://evil.example"),
		login("log in with a form too large", url.Values{"token": {strings.Repeat("x", 9<<10)}}, 400, html),
		func() step {
			s := login("log in", url.Values{"token": {adminToken}}, 303, "-")
			s.check = func(t *testing.T, r response, vars map[string]string) {
				c := sessionCookie(r)
				if c == nil || r.header.Get("Location") != "/ui" {
					t.Fatalf("login: no session cookie or not to /ui: %v", r.header)
				}
				vars["session"] = c.Value
			}
			return s
		}(),
		{name: "web view", method: "GET", path: "/ui", hdr: session, status: 200, page: html},
		{name: "web view's script", method: "GET", path: "/ui/static/app.js", status: 200, page: "text/javascript"},
		{name: "web view's style sheet", method: "GET", path: "/ui/static/style.css", status: 200, page: "text/css"},
		{name: "web view's file of no name", method: "GET", path: "/ui/static/nosuch.js", status: 404},
		{name: "web view's file of a bad name", method: "GET", path: "/ui/static/..%2fwebui.go", status: 400},
		{name: "web view's events", method: "GET", path: "/ui/events", hdr: session, status: 200, page: "text/event-stream",
			check: func(t *testing.T, r response, _ map[string]string) {
				if !strings.HasPrefix(string(r.body), "retry: ") || !strings.HasSuffix(string(r.body), "\n\n") {
					t.Errorf("first event %q, want retry: …", r.body)
				}
			}},
		{name: "web view's events without a session", method: "GET", path: "/ui/events", status: 401, code: "unauthorized"},
		{name: "log out from another site", method: "POST", path: "/ui/logout", hdr: append([]string{"Origin", "https://evil.example"}, session...), status: 403, page: "-"},
		{name: "log out", method: "POST", path: "/ui/logout", hdr: session, status: 303, page: "-", check: wantHeader("Location", "/ui/login")},
		{name: "web view's events after logout", method: "GET", path: "/ui/events", hdr: session, status: 401, code: "unauthorized"},
	}
}

// domainSteps drive the custom domain routes for app site of tenant dom, placed on vmNode
// (the API's Sealer is a real key chain; its apps domain is apps.test).
func domainSteps(t *testing.T, e *env) []step {
	now := time.Now()
	good, goodKey := pemCert(t, nil, now.Add(-time.Hour), now.Add(24*time.Hour), "www.example.test")
	appsCert, appsKey := pemCert(t, nil, now.Add(-time.Hour), now.Add(time.Hour), "x.dom.apps.test")
	p := "/v1/tenants/dom/apps/site/domains"
	return []step{
		{name: "domains: tenant", method: "POST", path: "/v1/tenants", auth: asAdmin, body: `{"name":"dom"}`, status: 201},
		{name: "domains: none yet", method: "GET", path: "/v1/tenants/dom/domains", auth: asBob, status: 200, check: count("domains", 0),
			before: func(t *testing.T, _ map[string]string) {
				if err := e.store.AddTenantHost(t.Context(), "dom", vmNode, "KEY"); err != nil {
					t.Fatal(err)
				}
				if _, err := e.store.PlaceApp(t.Context(), "dom", "site", vmNode, nil); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "domains without a token", method: "GET", path: "/v1/tenants/dom/domains", status: 401},
		{name: "add a domain", method: "PUT", path: p + "/www.example.test", auth: asAdmin, body: domainBody(good, goodKey, true), status: 200, check: want("domain", "www.example.test", "app", "site")},
		{name: "add a domain as a reader", method: "PUT", path: p + "/www.example.test", auth: asBob, body: domainBody(good, goodKey, false), status: 403, code: "forbidden"},
		{name: "add a domain its certificate does not name", method: "PUT", path: p + "/shop.example.test", auth: asAdmin, body: domainBody(good, goodKey, false), status: 422, code: "cert_name"},
		{name: "add a domain under the apps domain", method: "PUT", path: p + "/x.dom.apps.test", auth: asAdmin, body: domainBody(appsCert, appsKey, false), status: 422, code: "apps_domain"},
		{name: "add a domain of a bad name", method: "PUT", path: p + "/*.example.test", auth: asAdmin, body: domainBody(good, goodKey, false), status: 400, code: "bad_id"},
		{name: "add a domain to no app", method: "PUT", path: "/v1/tenants/dom/apps/nosuch/domains/www.example.test", auth: asAdmin, body: domainBody(good, goodKey, false), status: 404},
		{name: "the tenant's domains", method: "GET", path: "/v1/tenants/dom/domains", auth: asBob, status: 200, check: count("domains", 1)},
		{name: "the app's domains", method: "GET", path: p, auth: asBob, status: 200, check: count("domains", 1)},
		{name: "the app's domains without a token", method: "GET", path: p, status: 401},
		{name: "remove the domain", method: "DELETE", path: p + "/www.example.test", auth: asAdmin, status: 204},
		{name: "remove it again", method: "DELETE", path: p + "/www.example.test", auth: asAdmin, status: 404},
	}
}

// latestSteps drive every node's newest observation.
func latestSteps() []step {
	return []step{
		{name: "newest observations", method: "GET", path: "/v1/observations/latest", auth: asBob, status: 200},
		{name: "newest observations without a token", method: "GET", path: "/v1/observations/latest", status: 401},
	}
}

// unsealedDomain puts a custom domain on an API without a Sealer: 503, and returns the status.
func unsealedDomain(t *testing.T, e *env) int {
	now := time.Now()
	cert, key := pemCert(t, nil, now.Add(-time.Hour), now.Add(time.Hour), "www.example.test")
	r := e.do(t, "PUT", "/v1/tenants/dom/apps/site/domains/www.example.test", []byte(domainBody(cert, key, false)),
		"Authorization", asAdmin, "Content-Type", "application/json")
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("a domain on a ring 0 without a sealer: %d %s, want 503", r.status, r.body)
	}
	return r.status
}
