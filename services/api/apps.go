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

	"enjin"
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

// appRoutes are the tenant's app operations: the routes of appapi's table that ring 0 does
// not keep to itself. Ring 0 authenticates and authorizes the caller, then forwards the
// request, body streamed, to the hosting ring 1 node's app API; a few it serves in part
// itself (own). A GET reads the app, which a reader may; every other route changes it, which
// only the admin and the tenant may.
func (a *API) appRoutes() []route {
	own := map[appapi.Op]func(*call) error{
		appapi.OpApps:      a.listApps,
		appapi.OpDeploy:    a.deployApp,
		appapi.OpInstances: a.appInstances,
		appapi.OpEnv:       a.getEnv,
		appapi.OpDestroy:   a.destroyApp,
		appapi.OpLogs:      a.appLogs,
	}
	var rs []route
	for _, ar := range appapi.Routes() {
		if ar.Ring0 {
			continue
		}
		rt := route{method: ar.Method, path: ar.Path, access: admin, summary: ar.Summary, rawBody: ar.Body, rawIn: ar.In,
			status: ar.Status, out: ar.Out, lines: ar.Lines, serve: a.forwardApps,
			tenantOK: true, forwarded: true} // a tenant manages its own apps
		if ar.Method == http.MethodGet {
			rt.access = reader
		}
		if ar.Op == appapi.OpDeploy { // ring 0's to read, not ring 1's: deployApp drops it
			rt.query = append(rt.query, param{"node", strSchema, "the ring 1 node to place a new app on (the admin only)"})
		}
		for _, p := range ar.Query {
			rt.query = append(rt.query, appParam(p))
		}
		if serve, ok := own[ar.Op]; ok {
			rt.serve = serve
			delete(own, ar.Op)
		}
		rs = append(rs, rt)
	}
	for op := range own {
		panic(fmt.Sprintf("api: a handler for app operation %q, which appapi's table has not", op))
	}
	return rs
}

// appParam is the route parameter of an app operation's query parameter.
func appParam(p appapi.Param) param {
	if p.Integer {
		return param{p.Name, intSchema(p.Min, p.Max), p.Doc}
	}
	return param{p.Name, strSchema, p.Doc}
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
	var node enjin.NodeID
	if s, ok := c.q.vals["node"]; ok {
		if c.id.Caller() != "admin" {
			return &apiError{http.StatusForbidden, "forbidden", "only the admin places apps on nodes (node=)"}
		}
		node = enjin.NodeID(s)
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
