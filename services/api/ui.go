package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"

	"enjin/services/inventory"
	"enjin/services/webui"
)

// The web view (package webui) is mounted under /ui. Its pages read this API's JSON with the
// session cookie, which authorize accepts for GET only and always as a reader: the view
// reads, and an admin's session does not reveal what only an admin may see (env values).

func (a *API) uiRoutes() []route {
	const html = "text/html; charset=utf-8"
	const form = "application/x-www-form-urlencoded"
	// The login form answers a form it refuses with the form again; a bad query is still the
	// API's JSON error.
	formAgain := map[int][]string{http.StatusBadRequest: {"application/json", html}, http.StatusUnauthorized: {html}, http.StatusForbidden: {html}}
	return []route{
		{method: "GET", path: "/ui", access: public, summary: "The web view: a read-only dashboard of rings, compartments, nodes, tenants and apps, live; without a session, a redirect (303) to the login page",
			rawOut: html, status: http.StatusOK, answers: map[int][]string{http.StatusSeeOther: {html}}, serve: func(c *call) error { a.ui.Page(c.w, c.r); return nil }},
		{method: "GET", path: "/ui/login", access: public, summary: "The web view's login form",
			rawOut: html, status: http.StatusOK, serve: func(c *call) error { a.ui.LoginPage(c.w, c.r); return nil }},
		{method: "POST", path: "/ui/login", access: public, summary: "Log in to the web view with an admin or reader token (form field token; user too for an htpasswd user): a session cookie (HttpOnly, SameSite=Strict) and a redirect (303) to /ui; a refused token is 401 and a tenant's 403, with the form again",
			rawBody: form, answers: formAgain, status: http.StatusSeeOther, serve: func(c *call) error { a.ui.Login(c.w, c.r); return nil }},
		{method: "POST", path: "/ui/logout", access: public, summary: "End the web view's session: its cookie is cleared and a redirect (303) to the login page; posted from another site, 403 with no content",
			status: http.StatusSeeOther, answers: map[int][]string{http.StatusForbidden: nil}, serve: func(c *call) error { a.ui.Logout(c.w, c.r); return nil }},
		{method: "GET", path: "/ui/events", access: public, summary: "Server-Sent Events for the web view's session: nodes and apps, each when that part of the inventory changes (polled once a second), and logout when the session ends; 401 without a session",
			rawOut: "text/event-stream", status: http.StatusOK, serve: a.uiEvents},
		{method: "GET", path: "/ui/static/{file}", access: public, summary: "The web view's script and style sheet",
			answers: map[int][]string{http.StatusOK: {"text/javascript; charset=utf-8", "text/css; charset=utf-8"}}, status: http.StatusOK, serve: a.uiStatic},
	}
}

func (a *API) uiEvents(c *call) error {
	if _, ok := a.ui.Session(c.r); !ok {
		return &apiError{http.StatusUnauthorized, "unauthorized", "no web view session: log in at /ui/login"}
	}
	w, done := streaming(c.w, c.r)
	defer done()
	if err := a.ui.Events(w, c.r); errors.Is(err, webui.ErrNoSession) {
		return &apiError{http.StatusUnauthorized, "unauthorized", "no web view session: log in at /ui/login"}
	}
	return nil
}

func (a *API) uiStatic(c *call) error {
	if !a.ui.Static(c.w, c.r, c.path["file"]) {
		return notFound("no file %q in the web view", c.path["file"])
	}
	return nil
}

func checkStaticName(s string) (string, bool) {
	if len(s) == 0 || len(s) > 64 || s[0] == '.' {
		return s, false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return s, false
		}
	}
	return s, true
}

// uiSession is the reader identity of r's web view session, for a GET without an
// Authorization header.
func (a *API) uiSession(r *http.Request) (Identity, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return Identity{}, false
	}
	id, ok := a.ui.Session(r)
	if !ok {
		return Identity{}, false
	}
	return Identity{Name: id.Name + " (web view)"}, true
}

// uiLogin checks a web view login as the Authorization header would be checked: a bearer
// token, or an htpasswd user's password. A tenant's identity is refused.
func (a *API) uiLogin(ctx context.Context, user, secret string) (webui.Identity, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "/ui/login", nil)
	if err != nil {
		return webui.Identity{}, err
	}
	if user == "" {
		r.Header.Set("Authorization", "Bearer "+secret)
	} else {
		r.SetBasicAuth(user, secret)
	}
	for _, c := range a.checkers {
		id, ok, err := c.Check(r)
		switch {
		case err != nil:
			return webui.Identity{}, fmt.Errorf("%w: %w", webui.ErrRefused, err)
		case !ok:
			continue
		case id.Tenant != "":
			return webui.Identity{}, webui.ErrTenant
		}
		return webui.Identity{Name: id.Name, Admin: id.Admin}, nil
	}
	return webui.Identity{}, webui.ErrRefused
}

// uiDigests digests what the web view shows, for its events: the nodes (state, newest
// observation, version), and the apps (tenants, placements with their kept release, and the
// app instances' states).
func (a *API) uiDigests(ctx context.Context) (map[string]string, error) {
	nodes, err := a.store.ListNodes(ctx, inventory.NodeFilter{Limit: 10000})
	if err != nil {
		return nil, err
	}
	tenants, err := a.store.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	places, err := a.store.Placements(ctx)
	if err != nil {
		return nil, err
	}
	hn, ha := sha256.New(), sha256.New()
	for _, n := range nodes {
		fmt.Fprintf(hn, "%q %q %d %d %q\n", n.ID, n.State, n.LastSeq, n.Version, n.ObservedState)
		if n.Ring == 2 {
			fmt.Fprintf(ha, "n %q %q %q\n", n.ID, n.State, n.ObservedState)
		}
	}
	for _, t := range tenants {
		fmt.Fprintf(ha, "t %q %d\n", t.ID, t.Version)
	}
	for _, p := range places {
		fmt.Fprintf(ha, "p %q %q %q %q %d %q %v\n", p.Kind, p.Tenant, p.App, p.Node, p.KeptRelease, p.MovedFrom, p.Replica)
	}
	sum := func(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }
	return map[string]string{"nodes": sum(hn), "apps": sum(ha)}, nil
}

// Close ends the web view's event streams and waits for them; call it as the server shuts
// down (http.Server.RegisterOnShutdown), or the streams keep their connections busy.
func (a *API) Close() error {
	return a.ui.Close()
}
