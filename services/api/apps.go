package api

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// callerHeader tells ring 1 who a forwarded request speaks for (Identity.Caller).
const callerHeader = "Enjin-Caller"

// dropEnjinFields deletes every field whose name starts with Enjin-, in any case, or with
// Enjin_, which CGI-style servers read as the same name.
func dropEnjinFields(h http.Header) {
	for k := range h {
		if len(k) >= len("enjin-") && strings.EqualFold(strings.ReplaceAll(k[:len("enjin-")], "_", "-"), "enjin-") {
			delete(h, k)
		}
	}
}

// appList, appReleases… are documented loosely: the app operations are carried out by the
// ring 1 node hosting the tenant, which defines their answers (package apphost).
type appAnswer map[string]any

// appRoutes are the tenant's app operations. Ring 0 authenticates and authorizes the caller,
// then forwards the request, body streamed, to the hosting ring 1 node's app API.
func (a *API) appRoutes() []route {
	p := "/v1/tenants/{tenant}/apps"
	fwd := a.forwardApps
	rs := []route{
		{method: "GET", path: p, access: reader, summary: "List the tenant's apps", status: http.StatusOK, out: appAnswer{}, serve: fwd},
		{method: "POST", path: p + "/{app}/releases", access: admin, summary: "Deploy a bundle (the body: a gzipped tar with a Procfile) as the app's next release; 422 if it is not healthy within 60 s (rolled back)",
			rawBody: "application/gzip", status: http.StatusCreated, out: appAnswer{}, serve: fwd},
		{method: "GET", path: p + "/{app}/releases", access: reader, summary: "The app's releases", status: http.StatusOK, out: appAnswer{}, serve: fwd},
		{method: "POST", path: p + "/{app}/rollback", access: admin, summary: `Make an earlier release live again: {"release": n}`,
			rawBody: "application/json", status: http.StatusOK, out: appAnswer{}, serve: fwd},
		{method: "GET", path: p + "/{app}/instances", access: reader, summary: "The app's instances: node, address, port, state, restarts", status: http.StatusOK, out: appAnswer{}, serve: fwd},
		{method: "PUT", path: p + "/{app}/scale/{proctype}", access: admin, summary: `Run n instances of a process type: {"instances": n}`,
			rawBody: "application/json", status: http.StatusOK, out: appAnswer{}, serve: fwd},
		{method: "GET", path: p + "/{app}/env", access: reader, summary: "The app's environment: its variables' names, and their values with reveal=1",
			query:  []param{{"reveal", intSchema(0, 1), "1 returns values; only the admin and the tenant may"}},
			status: http.StatusOK, out: appAnswer{}, serve: a.getEnv},
		{method: "PUT", path: p + "/{app}/env", access: admin, summary: `Replace the app's environment: {"env": {...}}; makes a new release`,
			rawBody: "application/json", status: http.StatusOK, out: appAnswer{}, serve: fwd},
		{method: "PATCH", path: p + "/{app}/env", access: admin, summary: `Change some variables, keep the rest: {"set": {...}, "unset": [...]}; makes a new release`,
			rawBody: "application/json", status: http.StatusOK, out: appAnswer{}, serve: fwd},
		{method: "DELETE", path: p + "/{app}", access: admin, summary: "Destroy the app: stop its instances, delete its releases", status: http.StatusNoContent, serve: fwd},
		{method: "GET", path: p + "/{app}/logs", access: reader, summary: "The app's log lines as newline-delimited JSON; follow=1 streams new ones",
			query:  []param{{"lines", intSchema(1, 10000), "how many past lines (default 100)"}, {"follow", intSchema(0, 1), "1: keep streaming"}},
			status: http.StatusOK, out: appAnswer{}, serve: fwd},
	}
	for i := range rs {
		rs[i].tenantOK = true // a tenant manages its own apps
	}
	return rs
}

// getEnv forwards a read of an app's environment. Values are secrets: ring 0 itself refuses
// reveal=1 to a reader, and ring 1, told the caller, shows them only to the admin and the
// tenant, so neither side alone has to be right.
func (a *API) getEnv(c *call) error {
	reveal, err := c.q.intParam("reveal", 0, 1, 0)
	if err != nil {
		return err
	}
	if reveal == 1 && c.id.Caller() == "reader" {
		return &apiError{http.StatusForbidden, "forbidden", fmt.Sprintf("%s may read the names of an app's variables, not their values (reveal=1): only the admin and the tenant may", c.id.Name)}
	}
	return a.forwardApps(c)
}

// forwardApps proxies an authorized app request to the hosting ring 1 node. Ring 1 learns who
// is calling from Enjin-Caller, which only ring 0 writes: every field of the client's whose
// name starts with Enjin- is dropped first, so no caller can claim to be another.
func (a *API) forwardApps(c *call) error {
	base, token, err := a.ring0.AppsBackend(c.ctx, c.tenant())
	if err != nil {
		return err
	}
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = u.Host
			dropEnjinFields(pr.Out.Header)
			dropEnjinFields(pr.Out.Trailer) // a chunked body's trailer could carry one too
			pr.Out.Header.Set("Authorization", "Bearer "+token)
			pr.Out.Header.Set(callerHeader, c.id.Caller())
		},
		FlushInterval: -1, // every write at once: a deploy's progress, a followed log
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			a.fail(w, r, &apiError{http.StatusBadGateway, "ring1_unavailable", "the ring 1 node hosting this tenant did not answer"})
		},
	}
	w, done := streaming(c.w, c.r)
	defer done()
	rp.ServeHTTP(w, c.r)
	return nil
}
