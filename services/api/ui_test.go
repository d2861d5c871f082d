package api_test

import (
	"bufio"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/services/inventory"
	"enjin/services/webui"
)

// login posts the web view's login form.
func (e *env) login(t *testing.T, form url.Values, hdr ...string) response {
	t.Helper()
	return e.do(t, "POST", "/ui/login", []byte(form.Encode()), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, hdr...)...)
}

func sessionCookie(r response) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == webui.CookieName {
			return c
		}
	}
	return nil
}

// TestWebViewLogin: the login form refuses a wrong token (401), a tenant's token (403) and a
// cross-site post (403), each without a session; the admin's token and a reader's password
// get an HttpOnly, SameSite=Strict session cookie of 12 hours; without a session /ui sends
// the browser to the login page and the JSON API refuses; with one, GET routes take the
// cookie as a reader but writes do not; logout ends it. Every page carries the CSP.
func TestWebViewLogin(t *testing.T) {
	e := newEnv(t)
	if r := e.do(t, "POST", "/v1/tenants", []byte(`{"name":"acme"}`), "Authorization", asAdmin, "Content-Type", "application/json"); r.status != 201 {
		t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	tr := e.do(t, "POST", "/v1/tenants/acme/tokens", []byte(`{}`), "Authorization", asAdmin, "Content-Type", "application/json")
	tenantTok := str(tr.json, "token")
	if !strings.HasPrefix(tenantTok, inventory.TenantTokenPrefix) {
		t.Fatalf("tenant token: %d %s", tr.status, tr.body)
	}

	r := e.do(t, "GET", "/ui", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/login" || strings.Contains(string(r.body), "app.js") {
		t.Fatalf("GET /ui without a session: %d %v %q, want 303 to /ui/login", r.status, r.header.Get("Location"), r.body)
	}
	r = e.do(t, "GET", "/ui/login", nil)
	if r.status != 200 || r.header.Get("Content-Security-Policy") != webui.CSP || !strings.Contains(string(r.body), `<form method="post" action="/ui/login"`) {
		t.Fatalf("GET /ui/login: %d CSP %q\n%s", r.status, r.header.Get("Content-Security-Policy"), r.body)
	}
	if !strings.Contains(webui.CSP, "default-src 'self'") || strings.Contains(webui.CSP, "unsafe-inline") {
		t.Fatalf("CSP %q", webui.CSP)
	}

	for _, tc := range []struct {
		name   string
		form   url.Values
		hdr    []string
		status int
		says   string
	}{
		{"wrong token", url.Values{"token": {"not-the-token-at-all"}}, nil, 401, "refused"},
		{"no token", url.Values{}, nil, 401, "Enter a token"},
		{"wrong password", url.Values{"user": {"bob"}, "token": {"nope"}}, nil, 401, "refused"},
		{"tenant token", url.Values{"token": {tenantTok}}, nil, 403, "tenant"},
		{"cross-site", url.Values{"token": {adminToken}}, []string{"Origin", "https://evil.example"}, 403, "this site"},
	} {
		r := e.login(t, tc.form, tc.hdr...)
		if r.status != tc.status || !strings.Contains(string(r.body), tc.says) || sessionCookie(r) != nil ||
			r.header.Get("Content-Security-Policy") != webui.CSP {
			t.Errorf("%s: %d %v %s, want %d saying %q and no session", tc.name, r.status, r.header["Set-Cookie"], r.body, tc.status, tc.says)
		}
	}

	r = e.login(t, url.Values{"token": {adminToken}}, "Origin", e.srv.URL)
	c := sessionCookie(r)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui" || c == nil {
		t.Fatalf("admin login: %d %v %s", r.status, r.header, r.body)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/" || c.MaxAge < 12*3600-5 || c.MaxAge > 12*3600 || len(c.Value) < 40 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP, Path=/, 12 h, a long random id", c)
	}
	cookie := c.Name + "=" + c.Value

	r = e.do(t, "GET", "/ui", nil, "Cookie", cookie)
	if r.status != 200 || r.header.Get("Content-Security-Policy") != webui.CSP || !strings.Contains(string(r.body), `src="/ui/static/app.js"`) ||
		strings.Contains(string(r.body), "<script>") {
		t.Fatalf("GET /ui with a session: %d %v\n%s", r.status, r.header, r.body)
	}
	if r = e.do(t, "GET", "/v1/nodes", nil, "Cookie", cookie); r.status != 200 {
		t.Fatalf("GET /v1/nodes with the session: %d %s", r.status, r.body)
	}
	if r = e.do(t, "POST", "/v1/compartments", []byte(`{"ring":0,"type":"rack","label":"x"}`), "Cookie", cookie, "Content-Type", "application/json"); r.status != 401 {
		t.Fatalf("POST with only the session cookie: %d %s, want 401", r.status, r.body)
	}
	if r = e.do(t, "GET", "/v1/nodes", nil, "Cookie", webui.CookieName+"=forged"); r.status != 401 {
		t.Fatalf("GET with a forged session: %d %s, want 401", r.status, r.body)
	}

	// A reader logs in too; a new login replaces the old session.
	r = e.login(t, url.Values{"user": {"bob"}, "token": {"bob-pw"}}, "Cookie", cookie)
	rc := sessionCookie(r)
	if r.status != http.StatusSeeOther || rc == nil {
		t.Fatalf("reader login: %d %s", r.status, r.body)
	}
	if r = e.do(t, "GET", "/v1/nodes", nil, "Cookie", cookie); r.status != 401 {
		t.Fatalf("the session a new login replaced still reads: %d", r.status)
	}
	cookie = rc.Name + "=" + rc.Value

	for name, want := range map[string]int{"app.js": 200, "style.css": 200, "login.html": 404, "nosuch.js": 404, "..%2fwebui.go": 400} {
		r := e.do(t, "GET", "/ui/static/"+name, nil)
		if r.status != want || want == 200 && r.header.Get("Content-Security-Policy") != webui.CSP {
			t.Errorf("GET /ui/static/%s: %d %v, want %d", name, r.status, r.header, want)
		}
	}

	// Logout ends the session: the API refuses the cookie and /ui asks for a login again.
	r = e.do(t, "POST", "/ui/logout", nil, "Cookie", cookie)
	if gone := sessionCookie(r); r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/login" || gone == nil || gone.MaxAge >= 0 {
		t.Fatalf("logout: %d %v", r.status, r.header)
	}
	if r = e.do(t, "GET", "/v1/nodes", nil, "Cookie", cookie); r.status != 401 {
		t.Fatalf("GET /v1/nodes after logout: %d", r.status)
	}
	if r = e.do(t, "GET", "/ui", nil, "Cookie", cookie); r.status != http.StatusSeeOther {
		t.Fatalf("GET /ui after logout: %d", r.status)
	}
	if r = e.do(t, "GET", "/ui/events", nil, "Cookie", cookie); r.status != 401 || str(r.json, "code") != "unauthorized" {
		t.Fatalf("GET /ui/events after logout: %d %s", r.status, r.body)
	}
}

// TestWebViewEvents: the event stream names both kinds at once, then "nodes" within seconds
// of a node's change, and "logout" when its session ends.
func TestWebViewEvents(t *testing.T) {
	e := newEnv(t)
	t.Cleanup(func() { e.api.Close() })
	c := sessionCookie(e.login(t, url.Values{"token": {adminToken}}))
	if c == nil {
		t.Fatal("no session")
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", e.srv.URL+"/ui/events", nil)
	req.AddCookie(c)
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /ui/events: %d %v", res.StatusCode, res.Header)
	}
	events := make(chan string, 16)
	go func() { // ends when the stream does
		defer close(events)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				events <- ev
			}
		}
	}()
	next := func(want string) time.Duration {
		t.Helper()
		t0 := time.Now()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("the stream ended waiting for %q", want)
				}
				if ev == want {
					return time.Since(t0)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %q event in 10 s", want)
			}
		}
	}
	first := map[string]bool{}
	for len(first) < 2 {
		select {
		case ev := <-events:
			first[ev] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("on connecting, events %v: want nodes and apps", first)
		}
	}
	if !first["nodes"] || !first["apps"] {
		t.Fatalf("on connecting, events %v: want nodes and apps", first)
	}
	if r := e.do(t, "POST", "/v1/nodes", []byte(`{"id":"edge-1","ring":1,"supervision_strategy":"external","observation_strategy":"self","label":"<b>x</b>"}`),
		"Authorization", asAdmin, "Content-Type", "application/json"); r.status != 201 {
		t.Fatalf("register a node: %d %s", r.status, r.body)
	}
	took := next("nodes")
	e.do(t, "POST", "/ui/logout", nil, "Cookie", c.Name+"="+c.Value)
	took2 := next("logout")
	t.Logf("nodes event %v after the change, logout event %v after the logout", took.Round(time.Millisecond), took2.Round(time.Millisecond))
}

// TestLatestObservations: each node's newest observation is checked against its keys: one
// signed by the node's registered key verifies, one by a stranger's key does not.
func TestLatestObservations(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"good", "stranger"} {
		if r := e.do(t, "POST", "/v1/nodes", []byte(`{"id":"`+id+`","ring":1,"supervision_strategy":"external","observation_strategy":"self"}`),
			"Authorization", asAdmin, "Content-Type", "application/json"); r.status != 201 {
			t.Fatalf("register %s: %d %s", id, r.status, r.body)
		}
	}
	k, err := keys.NewAttestation()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := e.store.CreateJoinToken(t.Context(), "good", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.RedeemJoinToken(t.Context(), tok, "UAUTHKEYOFGOOD", k.Public()); err != nil {
		t.Fatal(err)
	}
	ingest(t, e.store, "stranger") // signed by a key nobody registered
	var batch []inventory.Record
	for seq := uint64(1); seq <= 2; seq++ {
		o := inventory.Record{SignedObservation: enjin.SignedObservation{Node: "good", Seq: seq, TsNs: time.Now().UnixNano(), ReceivedAt: time.Now(),
			Signer: k.Public(), Payload: []byte(`{"state":"up"}`)}, State: "up"}
		o.Sig = k.Sign(bus.Canonical(nil, enjin.NodeID("good"), o.TsNs, o.Seq, o.Payload))
		batch = append(batch, o)
	}
	if err := e.store.Ingest(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	r := e.do(t, "GET", "/v1/observations/latest", nil, "Authorization", asBob)
	if r.status != 200 {
		t.Fatalf("GET /v1/observations/latest: %d %s", r.status, r.body)
	}
	if got := [4]string{str(r.json, "observations.0.node"), str(r.json, "observations.0.seq"), str(r.json, "observations.0.verified"), str(r.json, "observations.0.reason")}; got != [4]string{"good", "2", "true", ""} {
		t.Errorf("good's newest: got %v want [good 2 true ]", got)
	}
	if got := [4]string{str(r.json, "observations.1.node"), str(r.json, "observations.1.seq"), str(r.json, "observations.1.verified"), str(r.json, "observations.1.reason")}; got != [4]string{"stranger", "3", "false", "signer is not a key registered for the node"} {
		t.Errorf("stranger's newest: got %v", got)
	}
	if r := e.do(t, "GET", "/v1/observations/latest", nil); r.status != 401 {
		t.Errorf("without credentials: %d", r.status)
	}
}
