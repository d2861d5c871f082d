package test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"testing"
)

// An id put in a path: as written, and whether ring 0 may call it malformed (400) rather
// than another's (403) or unknown (404).
type pathID struct {
	v         string
	malformed bool
}

var (
	// tenantIDs are A's tenant as B might spell it to get past the check.
	tenantIDs = []pathID{{"acme", false}, {"%61cme", false}, {"acme-shop", false}, {"ACME", true}, {"acme%2F..", true},
		{"acme/", false}, {"/acme", false}, {"acme//", false}, {"evil/../acme", false}, {"evil%2F..%2Facme", true},
		{strings.Repeat("a", 64), true}, {"аcme", true}, {"ａｃｍｅ", true}, {"acme%00", true}, {"acme%20", true}, {"acme.", true}}
	// appIDs are A's app, with tenant acme.
	appIDs = []pathID{{"probe", false}, {"%70robe", false}, {"PROBE", true}, {"probe%2F..", true}, {"probe/", false},
		{"../probe", false}, {strings.Repeat("p", 64), true}, {"prоbe", true}}
)

// routeOp is one operation of the OpenAPI document.
type routeOp struct{ method, path string }

// tenantRoutes reads ring 0's OpenAPI document and returns every operation that takes
// credentials.
func (w *world) tenantRoutes(t *testing.T) []routeOp {
	code, body := w.c.call("", "GET", "/openapi.json", nil)
	var doc struct {
		Paths map[string]map[string]struct {
			Security *[]any `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); code != 200 || err != nil {
		t.Fatalf("GET /openapi.json: %d %v", code, err)
	}
	var ops []routeOp
	for p, methods := range doc.Paths {
		for m, op := range methods {
			if op.Security == nil || len(*op.Security) > 0 { // an empty list: public
				ops = append(ops, routeOp{strings.ToUpper(m), p})
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })
	return ops
}

// expand fills a route's wildcards with A's ids and their variants; image is A's image.
func expand(p, image string) []pathID {
	fill := func(p, tenant, app string) string {
		return strings.NewReplacer("{tenant}", tenant, "{app}", app, "{proctype}", "web", "{node}", "ring1-local",
			"{compartment}", "0b5cf1de-7a4e-4d8e-9a1e-2f3c4d5e6f70", "{tier}", "0b5cf1de-7a4e-4d8e-9a1e-2f3c4d5e6f71",
			"{kind}", "node", "{id}", "ring1-local", "{image}", image,
			"{vm}", "probe", "{volume}", "probe", "{network}", "probe", "{ruleset}", "probe", "{mac}", "52:54:00:00:00:01",
			"{domain}", "www.example.com", "{file}", "app.js").Replace(p)
	}
	if p == "/v1/images" || p == "/v1/images/kernel" {
		// Listing and uploading are B's own to do; for A's tenant they must be refused.
		return []pathID{{p + "?tenant=acme&name=pwned", false}, {p + "?tenant=%61cme&name=pwned", false}}
	}
	if !strings.Contains(p, "{tenant}") {
		return []pathID{{fill(p, "", ""), false}}
	}
	var out []pathID
	for _, tn := range tenantIDs {
		out = append(out, pathID{fill(p, tn.v, "probe"), tn.malformed})
	}
	if strings.Contains(p, "{app}") {
		for _, a := range appIDs[1:] {
			out = append(out, pathID{fill(p, "acme", a.v), a.malformed})
		}
	}
	return out
}

// bodyFor is what B sends to a route: what would harm A if it were carried out.
func bodyFor(t *testing.T, op routeOp) (io.Reader, string) {
	switch {
	case op.method == "GET" || op.method == "DELETE":
		return nil, ""
	case strings.HasSuffix(op.path, "/releases"):
		return bundleOf(t, map[string]string{"Procfile": "web: sleep 1000\n"}), "application/gzip"
	case strings.Contains(op.path, "/scale/"):
		return strings.NewReader(`{"instances":0}`), "application/json"
	case strings.HasSuffix(op.path, "/env"):
		return strings.NewReader(`{"env":{"PWNED":"1"},"set":{"PWNED":"1"}}`), "application/json"
	case strings.HasSuffix(op.path, "/rollback"):
		return strings.NewReader(`{"release":1}`), "application/json"
	case strings.HasPrefix(op.path, "/v1/images"):
		return bytes.NewReader(make([]byte, 1<<20)), "application/octet-stream"
	}
	return strings.NewReader(`{}`), "application/json"
}

// api: B's token against every route ring 0 documents, with A's ids spelled every way, by
// every method the route has. Each must be refused (401, 403, 404 or 405; 400 for an id
// that is malformed; a redirect for an unclean path only to where B is refused) and change
// nothing of A's.
func (w *world) api(t *testing.T) {
	c := w.c
	// The control: A's own token reaches what B's must not.
	if code, body := c.call("Bearer "+w.tokA, "GET", "/v1/tenants/acme/apps/probe/releases", nil); code != 200 {
		t.Fatalf("A's own token: GET its releases: %d %s", code, body)
	}
	// A keeps a VM image, which B must not see, change or take.
	code, body := c.call("Bearer "+w.tokA, "POST", "/v1/images?name=acme-disk&format=raw", bytes.NewReader(make([]byte, 1<<20)),
		"Content-Type", "application/octet-stream")
	var img struct{ ID string }
	json.Unmarshal([]byte(body), &img)
	if code != 201 || img.ID == "" {
		t.Fatalf("A's own token: upload an image: %d %s", code, body)
	}
	w.imageA = img.ID
	before := w.snapshot(t)
	routes := w.tenantRoutes(t)
	n := 0
	for _, op := range routes {
		for _, p := range expand(op.path, w.imageA) {
			body, ctype := bodyFor(t, op)
			code, resp, hdr := c.callHeader("Bearer "+w.tokB, op.method, p.v, body, "Content-Type", ctype, "If-Match", `"1"`)
			held := refused(code, p.malformed)
			loc := hdr.Get("Location")
			if code/100 == 3 && (clean(p.v) || !strings.HasPrefix(loc, "/v1/")) {
				held = false // a redirect is for an unclean path only, to a clean one here
			}
			if code/100 == 3 && held {
				body, ctype = bodyFor(t, op)
				code, resp = c.call("Bearer "+w.tokB, op.method, loc, body, "Content-Type", ctype, "If-Match", `"1"`)
				held = refused(code, false)
			}
			c.tally.add("api", held)
			if !held {
				t.Errorf("WALL BROKEN (api): B's token: %s %s: %d %s", op.method, p.v, code, strings.TrimSpace(resp))
			}
			if n++; n%50 == 0 {
				c.checkUnharmed(t)
			}
		}
	}
	c.checkUnharmed(t)
	if after := w.snapshot(t); after != before {
		t.Errorf("WALL BROKEN (api): A's state changed under B's requests:\nbefore %s\nafter  %s", before, after)
	}
	t.Logf("api: %d requests as B over %d documented operations", n, len(routes))
}

// refused is whether status refuses a request; 400 only for a malformed id.
func refused(status int, malformed bool) bool {
	switch status {
	case 401, 403, 404, 405:
		return true
	case 307, 308:
		return true // the caller checks where to
	case 400:
		return malformed
	}
	return false
}

// clean is whether a path is in the form ring 0's mux serves without redirecting.
func clean(p string) bool {
	return path.Clean(p) == p
}

// snapshot is A's and the tenants' state as the admin reads it, and A's app state (release,
// env values) as ring 1 keeps it on the host.
func (w *world) snapshot(t *testing.T) string {
	tok, err := os.ReadFile(w.c.ep.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, p := range []string{"/v1/tenants", "/v1/tenants/acme/apps", "/v1/tenants/acme/apps/probe/releases", "/v1/images"} {
		code, body := w.c.call("Bearer "+strings.TrimSpace(string(tok)), "GET", p, nil)
		if code != 200 {
			t.Fatalf("admin GET %s: %d %s", p, code, body)
		}
		b.WriteString(p + " " + strings.TrimSpace(body) + "\n")
	}
	state, err := os.ReadFile(w.c.appsDir("apps", "acme", "probe", "app.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(state), w.envSecret) {
		t.Fatalf("A's app.json does not hold its env value")
	}
	b.Write(state)
	return b.String()
}

// cliAsB: the enjin CLI with B's token on A's app, A's tenant and the nodes: each exits
// non-zero with a one-line error.
func (w *world) cliAsB(t *testing.T) {
	c := w.c
	for _, args := range [][]string{
		{"apps", "ps", "acme/probe"}, {"apps", "env", "acme/probe", "--reveal"}, {"apps", "env", "acme/probe"},
		{"apps", "env", "acme/probe", "PWNED=1"}, {"apps", "destroy", "acme/probe"}, {"apps", "scale", "acme/probe", "web=0"},
		{"apps", "rollback", "acme/probe", "1"}, {"apps", "releases", "acme/probe"}, {"apps", "ls", "acme"},
		{"apps", "deploy", "acme/probe", w.app, "-q"}, {"logs", "acme/probe"}, {"tenants", "delete", "acme"},
		{"tenants", "show", "acme"}, {"tenants", "token", "acme"}, {"tenants", "ls"}, {"nodes"},
		{"compartments", "ls"}, {"creds", "ops", "--out", c.dir + "/b.creds"},
		{"images", "ls", "--tenant", "acme"}, {"images", "show", "acme/acme-disk"}, {"images", "rm", "acme/acme-disk"},
		{"images", "show", w.imageA}, {"images", "rm", w.imageA},
	} {
		out, err := c.as(w.tokB, args...)
		out = strings.TrimSpace(out)
		held := err != nil && out != "" && !strings.Contains(out, "\n") && strings.HasPrefix(out, "enjin: ") &&
			!strings.Contains(out, w.envSecret)
		c.tally.add("cli", held)
		if !held {
			t.Errorf("WALL BROKEN (cli): enjin %s as B: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("enjin %s as B: %s", strings.Join(args, " "), out)
		}
	}
	c.checkUnharmed(t)
}

// reader: a read-only API user reads A's app but never its env values, whatever it asks for,
// and may change nothing.
func (w *world) reader(t *testing.T) {
	c := w.c
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(readerUser+":"+readerPass))
	if code, _ := c.call(auth, "GET", "/v1/tenants/acme/apps", nil); code != 200 {
		t.Fatalf("the reader cannot read A's apps: %d", code)
	}
	check := func(desc string, ok bool, code int, body string) {
		held := ok && code < 500 && !strings.Contains(body, w.envSecret)
		c.tally.add("reader", held)
		if !held {
			t.Errorf("WALL BROKEN (reader): %s: %d %s", desc, code, strings.TrimSpace(body))
		}
	}
	p := "/v1/tenants/acme/apps/probe"
	for _, q := range []string{"/v1/tenants/acme/apps", "/v1/tenants/acme/apps?reveal=1", p + "/releases",
		p + "/releases?reveal=1", p + "/instances", p + "/logs?lines=10000", p + "/logs?lines=10&reveal=1"} {
		// Enjin-Caller is how ring 0 would tell ring 1 who asks: a caller's own must not count.
		for _, hdr := range [][]string{nil, {"Enjin-Caller", "admin"}, {"Enjin-Caller", "tenant"}} {
			code, body := c.call(auth, "GET", q, nil, hdr...)
			check("GET "+q+" "+strings.Join(hdr, ": "), true, code, body)
		}
	}
	envRouted := false
	for _, op := range w.tenantRoutes(t) {
		envRouted = envRouted || op.method == "GET" && strings.HasSuffix(op.path, "/{app}/env")
	}
	code, body := c.call(auth, "GET", p+"/env", nil)
	var env struct {
		Masked bool `json:"masked"`
	}
	json.Unmarshal([]byte(body), &env)
	if envRouted {
		check("GET env (masked)", code == 200 && env.Masked, code, body)
		for _, hdr := range [][]string{nil, {"Enjin-Caller", "admin"}} {
			code, body = c.call(auth, "GET", p+"/env?reveal=1", nil, hdr...)
			check("GET env?reveal=1 "+strings.Join(hdr, ": "), code == 403, code, body)
		}
	} else {
		t.Logf("reader: ring 0 does not route GET %s/env (%d); only the other reads are tried", p, code)
		check("GET env (not routed)", code == 405, code, body)
	}
	for _, m := range []struct{ method, path, body string }{
		{"PUT", p + "/env", `{"env":{"PWNED":"1"}}`}, {"PATCH", p + "/env", `{"set":{"PWNED":"1"}}`},
		{"DELETE", p, ""}, {"PUT", p + "/scale/web", `{"instances":0}`}, {"POST", p + "/rollback", `{"release":1}`},
		{"POST", p + "/releases", "x"}, {"POST", "/v1/tenants/acme/tokens", `{}`}, {"DELETE", "/v1/tenants/acme", ""},
		{"POST", "/v1/tenants", `{"id":"reader-made"}`}, {"POST", "/v1/creds/ops", `{}`},
		{"POST", "/v1/images?name=reader-made&format=raw", "x"}, {"POST", "/v1/images?name=reader-made&format=raw&tenant=acme", "x"},
		{"DELETE", "/v1/images/" + w.imageA, ""}, {"GET", "/v1/images/" + w.imageA + "/content", ""},
	} {
		code, body := c.call(auth, m.method, m.path, strings.NewReader(m.body), "Content-Type", "application/json", "If-Match", `"1"`)
		check(m.method+" "+m.path, code == 403 || code == 405, code, body)
	}
	c.checkUnharmed(t)
}
