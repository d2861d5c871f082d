package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"enjin/rings"
	"enjin/services/appapi"
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

// appRoutes are the tenant's app operations. Ring 0 authenticates and authorizes the caller,
// then forwards the request, body streamed, to the hosting ring 1 node's app API.
func (a *API) appRoutes() []route {
	p := "/v1/tenants/{tenant}/apps"
	fwd := a.forwardApps
	rs := []route{
		{method: "GET", path: p, access: reader, summary: "List the tenant's apps, on every node hosting them: each once, with the node it lives on (node) and every node running its instances (nodes)", status: http.StatusOK, out: appapi.AppList{}, serve: a.listApps},
		{method: "POST", path: p + "/{app}/releases", access: admin, summary: "Deploy a bundle (the body: a gzipped tar with a Procfile) as the app's next release; 422 if it is not healthy within 60 s (rolled back). An app's first deploy places it on a ring 1 node: node=ID (the admin only) names one, which then hosts the tenant too",
			query: []param{{"node", map[string]any{"type": "string"}, "the ring 1 node to place a new app on (the admin only)"},
				{"package", map[string]any{"type": "string"}, "deploy again, with no body, a package (sha256-… of its uncompressed tar) one of the app's releases was made of; 404 if it has none"},
				{"delta", intSchema(1, 1), "1: the bundle's files that the app's releases have (see POST …/files) are references, sent without content"}},
			rawBody: "application/gzip", status: http.StatusCreated, out: appapi.Release{}, lines: []any{appapi.Event{}}, serve: a.deployApp},
		{method: "GET", path: p + "/{app}/releases", access: reader, summary: "The app's releases", status: http.StatusOK, out: appapi.ReleaseList{}, serve: fwd},
		{method: "POST", path: p + "/{app}/files", access: admin, summary: `Which of these file digests the app's releases have, so a deploy need not send them: {"digests": ["sha256-…"]} → {"have": [...]}`,
			rawBody: "application/json", rawIn: appapi.FilesQuery{}, status: http.StatusOK, out: appapi.Files{}, serve: fwd},
		{method: "POST", path: p + "/{app}/rollback", access: admin, summary: `Make an earlier release live again: {"release": n}`,
			rawBody: "application/json", rawIn: appapi.Rollback{}, status: http.StatusOK, out: appapi.Release{}, serve: fwd},
		{method: "GET", path: p + "/{app}/instances", access: reader, summary: "The app's instances: node, address, port, state, restarts; and, for an app spread over several hosts, the host each runs on", status: http.StatusOK, out: appapi.InstanceList{}, serve: a.appInstances},
		{method: "PUT", path: p + "/{app}/scale/{proctype}", access: admin, summary: `Run n instances of a process type: {"instances": n}`,
			rawBody: "application/json", rawIn: appapi.Scale{}, status: http.StatusOK, out: appapi.InstanceList{}, serve: fwd},
		{method: "GET", path: p + "/{app}/env", access: reader, summary: "The app's environment: its variables' names, and their values with reveal=1",
			query:  []param{{"reveal", intSchema(0, 1), "1 returns values; only the admin and the tenant may"}},
			status: http.StatusOK, out: appapi.Env{}, serve: a.getEnv},
		{method: "PUT", path: p + "/{app}/env", access: admin, summary: `Replace the app's environment: {"env": {...}}; makes a new release`,
			rawBody: "application/json", rawIn: appapi.EnvPut{}, status: http.StatusOK, out: appapi.Release{}, serve: fwd},
		{method: "PATCH", path: p + "/{app}/env", access: admin, summary: `Change some variables, keep the rest: {"set": {...}, "unset": [...]}; makes a new release`,
			rawBody: "application/json", rawIn: appapi.EnvPatch{}, status: http.StatusOK, out: appapi.Release{}, serve: fwd},
		{method: "DELETE", path: p + "/{app}", access: admin, summary: "Destroy the app: stop its instances, delete its releases", status: http.StatusNoContent, serve: a.destroyApp},
		{method: "POST", path: p + "/{app}/run", access: admin, summary: `Run a one-off job in a sandbox of the app: {"command": "…"} (sh -c), with its live release, environment, limits, HOME and networks, routed to by nobody; its output streams back as newline-delimited JSON log lines, then {"exit": n}. Ending the request stops it`,
			rawBody: "application/json", rawIn: appapi.Job{}, status: http.StatusOK, lines: []any{appapi.LogLine{}, appapi.JobEnd{}}, serve: fwd},
		{method: "GET", path: p + "/{app}/cron", access: reader, summary: "The app's scheduled jobs (enjin.json cron) as its home host runs them: schedule, command, next run, how the last run went (exit status, error, duration), runs and skipped runs", status: http.StatusOK, out: appapi.CronList{}, serve: fwd},
		{method: "GET", path: p + "/{app}/logs", access: reader, summary: "The app's log lines as newline-delimited JSON; follow=1 streams new ones. For an app spread over hosts, every host's, oldest first, each naming its host",
			query:  []param{{"lines", intSchema(1, 10000), "how many past lines (default 100)"}, {"follow", intSchema(0, 1), "1: keep streaming"}},
			status: http.StatusOK, lines: []any{appapi.LogLine{}}, serve: a.appLogs},
	}
	for i := range rs {
		rs[i].tenantOK = true // a tenant manages its own apps
		rs[i].forwarded = true
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

// forwardApps proxies an authorized request about one app to the ring 1 node running it.
func (a *API) forwardApps(c *call) error {
	b, err := a.ring0.AppsBackend(c.ctx, c.tenant(), c.path["app"], false, "")
	if err != nil {
		return err
	}
	return a.forwardTo(c, b, nil)
}

// deployApp forwards a deploy to the node running the app — placing an app deployed for the
// first time, on the node the admin names, if it does.
func (a *API) deployApp(c *call) error {
	var node rings.NodeID
	if s, ok := c.q.vals["node"]; ok {
		if c.id.Caller() != "admin" {
			return &apiError{http.StatusForbidden, "forbidden", "only the admin places apps on nodes (node=)"}
		}
		node = rings.NodeID(s)
		if err := node.Validate(); err != nil {
			return badRequest("bad_query", "node=%q: %v", trunc(s, 80), err)
		}
		q := c.r.URL.Query()
		q.Del("node") // ring 0's to read, not ring 1's
		c.r.URL.RawQuery = q.Encode()
	}
	b, err := a.ring0.AppsBackend(c.ctx, c.tenant(), c.path["app"], true, node)
	if err != nil {
		return err
	}
	return a.forwardTo(c, b, nil)
}

// destroyApp forwards an app's destruction, and forgets where the app ran once it is gone.
func (a *API) destroyApp(c *call) error {
	t, app := c.tenant(), c.path["app"]
	b, err := a.ring0.AppsBackend(c.ctx, t, app, false, "")
	if err != nil {
		return err
	}
	return a.forwardTo(c, b, func(resp *http.Response) error {
		if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotFound {
			return a.ring0.ForgetApp(resp.Request.Context(), t, app)
		}
		return nil
	})
}

// forwardTo proxies an authorized app request to app API b. Ring 1 learns who is calling
// from Enjin-Caller, which only ring 0 writes: every field of the client's whose name starts
// with Enjin- is dropped first, so no caller can claim to be another. modify, if set, sees
// the answer before the caller does.
func (a *API) forwardTo(c *call, b AppsBackend, modify func(*http.Response) error) error {
	u, err := url.Parse(b.Base)
	if err != nil {
		return err
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = u.Host
			dropEnjinFields(pr.Out.Header)
			dropEnjinFields(pr.Out.Trailer) // a chunked body's trailer could carry one too
			pr.Out.Header.Set("Authorization", "Bearer "+b.Token)
			pr.Out.Header.Set(callerHeader, c.id.Caller())
		},
		Transport: b.over(http.DefaultTransport.(*http.Transport)),
		ModifyResponse: func(resp *http.Response) error {
			if modify != nil {
				if err := modify(resp); err != nil {
					return err
				}
			}
			return ring1Error(resp)
		},
		FlushInterval: -1, // every write at once: a deploy's progress, a followed log
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			a.fail(w, r, &apiError{http.StatusBadGateway, "ring1_unavailable", "the ring 1 node running this tenant's app did not answer"})
		},
	}
	// Full duplex: ring 1 may answer (a deploy's first progress event) while the proxy still
	// sends it the body's last bytes. Otherwise net/http, writing the answer's header, reads
	// what is left of the body itself and closes it — under the proxy's feet, which then
	// drops its connection to ring 1 and cuts the stream (a deploy that ended "the connection
	// closed before the release was live or failed").
	if c.r.Body != nil && c.r.Body != http.NoBody {
		_ = http.NewResponseController(c.w).EnableFullDuplex() // errors: a writer that cannot, which has nothing to race
	}
	w, done := streaming(c.w, c.r)
	defer done()
	rp.ServeHTTP(w, c.r)
	return nil
}

// maxRing1Error bounds what ring 0 reads of an error answer of ring 1's app API.
const maxRing1Error = 64 << 10

// ring1Error makes an error answer of ring 1's app API one of the meta API's: JSON with a
// message and a code (an appapi.Error), whatever ring 1 sent. Ring 1 refusing ring 0's own
// credential is no fault of the caller's: ring 1 is then unavailable (502), not 401.
func ring1Error(resp *http.Response) error {
	if resp.StatusCode < 400 {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRing1Error))
	resp.Body.Close()
	var e appapi.Error
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		resp.StatusCode = http.StatusBadGateway
		e = appapi.Error{Error: "the ring 1 node running this tenant's app refused ring 0's credential", Code: "ring1_unavailable"}
	case err == nil && dec.Decode(&e) == nil && e.Error != "" && e.Code != "":
		e.Error = oneLine(e.Error)
	default:
		msg := oneLine(string(b))
		if msg == "" || !utf8.ValidString(msg) {
			msg = http.StatusText(resp.StatusCode)
		}
		e = appapi.Error{Error: "ring 1: " + msg, Code: "ring1_error"}
	}
	out, err := json.Marshal(e)
	if err != nil {
		return err
	}
	out = append(out, '\n')
	resp.Status = ""
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Del("Content-Encoding")
	return nil
}
