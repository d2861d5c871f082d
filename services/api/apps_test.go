package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"enjin/test/harness"
)

// fakeRing1 is a ring 1 app API that records what ring 0 forwarded to it.
type fakeRing1 struct {
	srv *httptest.Server

	mu   sync.Mutex
	seen []seenRequest
}

type seenRequest struct {
	method, path, query string
	header              http.Header
	body                string
	bodyErr             error // reading the body failed
}

// startRing1 serves a fake ring 1 app API, makes every tenant of e hosted by it, and creates
// tenants acme and globex with a token each, returned as Authorization values.
func startRing1(t *testing.T, e *env, handler http.HandlerFunc) (f *fakeRing1, asAcme, asGlobex string) {
	t.Helper()
	f = &fakeRing1{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		f.mu.Lock()
		h := r.Header.Clone()
		for k, v := range r.Trailer {
			h["Trailer-"+k] = v
		}
		f.seen = append(f.seen, seenRequest{r.Method, r.URL.Path, r.URL.RawQuery, h, string(b), err})
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+ring1Token {
			http.Error(w, "wrong token", http.StatusUnauthorized)
			return
		}
		if handler != nil {
			handler(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(f.srv.Close)
	e.ring0.apps = f.srv.URL
	tokens := map[string]string{}
	for _, tn := range []string{"acme", "globex"} {
		if r := e.do(t, "POST", "/v1/tenants", []byte(`{"name":"`+tn+`"}`), "Authorization", asAdmin, "Content-Type", "application/json"); r.status != 201 {
			t.Fatalf("create %s: %d %s", tn, r.status, r.body)
		}
		r := e.do(t, "POST", "/v1/tenants/"+tn+"/tokens", []byte(`{}`), "Authorization", asAdmin, "Content-Type", "application/json")
		if r.status != 201 {
			t.Fatalf("token for %s: %d %s", tn, r.status, r.body)
		}
		tokens[tn] = "Bearer " + str(r.json, "token")
	}
	return f, tokens["acme"], tokens["globex"]
}

// take returns what the fake ring 1 saw since the last take.
func (f *fakeRing1) take() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.seen
	f.seen = nil
	return s
}

// wait returns the requests the fake ring 1 saw since the last take once there are n.
func (f *fakeRing1) wait(t *testing.T, n int) []seenRequest {
	t.Helper()
	var seen []seenRequest
	harness.Eventually(t, 5*time.Second, func() bool {
		seen = append(seen, f.take()...)
		return len(seen) >= n
	}, "ring 1 to see %d requests", n)
	if len(seen) != n {
		t.Fatalf("ring 1 saw %d requests, want %d", len(seen), n)
	}
	return seen
}

// enjinFields returns the fields of h whose names start with Enjin- or Enjin_, any case.
func enjinFields(h http.Header) map[string][]string {
	out := map[string][]string{}
	for k, v := range h {
		if n := strings.ReplaceAll(strings.ToLower(k), "_", "-"); strings.HasPrefix(n, "enjin-") {
			out[k] = v
		}
	}
	return out
}

// TestForwardedCaller checks every identity reaches ring 1 as what it is, whatever Enjin-
// fields it sends, and that ring 1 sees its own token, never the caller's.
func TestForwardedCaller(t *testing.T) {
	e := newEnv(t)
	f, asAcme, _ := startRing1(t, e, nil)
	forged := [][]string{
		nil,
		{"Enjin-Caller", "admin"},
		{"enjin-caller", "admin", "ENJIN-CALLER", "tenant"},
		{"Enjin-Caller", "admin", "Enjin-Caller", "admin"},
		{"Enjin_Caller", "admin"},
		{"Enjin-Tenant", "globex", "Enjin-Error", "x", "Enjin-Caller-Override", "admin"},
		{"eNjIn-cAlLeR", "admin, tenant"},
	}
	attempts := 0
	for _, who := range []struct{ name, auth, want string }{
		{"admin token", asAdmin, "admin"},
		{"htpasswd admin", asAlice, "admin"},
		{"reader", asBob, "reader"},
		{"tenant", asAcme, "tenant"},
	} {
		for _, hdr := range forged {
			for _, rq := range []struct{ method, path string }{
				{"GET", "/v1/tenants/acme/apps"},
				{"GET", "/v1/tenants/acme/apps/web/env"},
				{"GET", "/v1/tenants/acme/apps/web/logs?lines=5"},
			} {
				attempts++
				r := e.do(t, rq.method, rq.path, nil, append([]string{"Authorization", who.auth}, hdr...)...)
				if r.status != 200 {
					t.Fatalf("%s %s as %s with %q: got %d %s want 200", rq.method, rq.path, who.name, hdr, r.status, r.body)
				}
				seen := f.take()
				if len(seen) != 1 {
					t.Fatalf("%s %s as %s: ring 1 saw %d requests, want 1", rq.method, rq.path, who.name, len(seen))
				}
				got := enjinFields(seen[0].header)
				if len(got) != 1 || len(got["Enjin-Caller"]) != 1 || got["Enjin-Caller"][0] != who.want {
					t.Errorf("%s %s as %s with %q: ring 1 saw Enjin fields %q, want only Enjin-Caller: %s",
						rq.method, rq.path, who.name, hdr, got, who.want)
				}
				if a := seen[0].header.Values("Authorization"); len(a) != 1 || a[0] != "Bearer "+ring1Token {
					t.Errorf("as %s: ring 1 saw Authorization %q", who.name, a)
				}
			}
		}
	}

	// A chunked body's trailer is no way in either.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/tenants/acme/apps/web/releases", pr)
	req.Header.Set("Authorization", asAcme)
	req.Trailer = http.Header{"Enjin-Caller": nil, "Enjin_Caller": nil}
	go func() { // ends when the body is written
		pw.Write([]byte("bundle"))
		req.Trailer.Set("Enjin-Caller", "admin")
		req.Trailer["Enjin_Caller"] = []string{"admin"}
		pw.Close()
	}()
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	attempts++
	seen := f.take()
	if len(seen) != 1 || seen[0].body != "bundle" || seen[0].header.Get("Enjin-Caller") != "tenant" {
		t.Fatalf("a deploy with Enjin- trailers: ring 1 saw %+v", seen)
	}
	for k := range seen[0].header {
		if strings.HasPrefix(strings.ToLower(k), "trailer-") {
			t.Errorf("ring 1 saw a trailer %s", k)
		}
	}
	t.Logf("%d forwarded requests with forged Enjin- fields: each reached ring 1 with ring 0's Enjin-Caller only", attempts)
}

// TestEnvAccess checks who may read and change an app's environment: a reader never sees
// values (ring 0 refuses reveal=1 itself), a tenant reaches only its own apps, and only the
// admin and the tenant change anything.
func TestEnvAccess(t *testing.T) {
	e := newEnv(t)
	f, asAcme, asGlobex := startRing1(t, e, nil)
	patch := `{"set":{"A":"1"},"unset":["B"]}`
	tests := []struct {
		name, method, path, auth, body string
		status                         int
		code                           string
		caller                         string // "": ring 1 must not be reached
	}{
		{"reader lists names", "GET", "/v1/tenants/acme/apps/web/env", asBob, "", 200, "", "reader"},
		{"reader reveal=0", "GET", "/v1/tenants/acme/apps/web/env?reveal=0", asBob, "", 200, "", "reader"},
		{"reader reveal=1", "GET", "/v1/tenants/acme/apps/web/env?reveal=1", asBob, "", 403, "forbidden", ""},
		{"admin reveal=1", "GET", "/v1/tenants/acme/apps/web/env?reveal=1", asAdmin, "", 200, "", "admin"},
		{"htpasswd admin reveal=1", "GET", "/v1/tenants/acme/apps/web/env?reveal=1", asAlice, "", 200, "", "admin"},
		{"tenant reveals its own", "GET", "/v1/tenants/acme/apps/web/env?reveal=1", asAcme, "", 200, "", "tenant"},
		{"tenant reveals another's", "GET", "/v1/tenants/globex/apps/web/env?reveal=1", asAcme, "", 403, "forbidden", ""},
		{"tenant reads another's names", "GET", "/v1/tenants/globex/apps/web/env", asAcme, "", 403, "forbidden", ""},
		{"other tenant reveals", "GET", "/v1/tenants/acme/apps/web/env?reveal=1", asGlobex, "", 403, "forbidden", ""},
		{"reveal=2", "GET", "/v1/tenants/acme/apps/web/env?reveal=2", asAdmin, "", 400, "bad_query", ""},
		{"reveal=true", "GET", "/v1/tenants/acme/apps/web/env?reveal=true", asAdmin, "", 400, "bad_query", ""},
		{"reveal twice", "GET", "/v1/tenants/acme/apps/web/env?reveal=1&reveal=1", asAdmin, "", 400, "bad_query", ""},
		{"reader reveal twice", "GET", "/v1/tenants/acme/apps/web/env?reveal=0&reveal=1", asBob, "", 400, "bad_query", ""},
		{"unknown parameter", "GET", "/v1/tenants/acme/apps/web/env?show=1", asAdmin, "", 400, "bad_query", ""},
		{"anonymous", "GET", "/v1/tenants/acme/apps/web/env", "", "", 401, "unauthorized", ""},
		{"reader patches", "PATCH", "/v1/tenants/acme/apps/web/env", asBob, patch, 403, "forbidden", ""},
		{"tenant patches another's", "PATCH", "/v1/tenants/globex/apps/web/env", asAcme, patch, 403, "forbidden", ""},
		{"tenant patches its own", "PATCH", "/v1/tenants/acme/apps/web/env", asAcme, patch, 200, "", "tenant"},
		{"admin patches", "PATCH", "/v1/tenants/globex/apps/web/env", asAdmin, patch, 200, "", "admin"},
		{"unknown tenant", "GET", "/v1/tenants/nobody/apps/web/env", asAdmin, "", 404, "not_found", ""},
		{"bad app name", "GET", "/v1/tenants/acme/apps/Web/env", asAdmin, "", 400, "bad_id", ""},
		// What ring 0 alone asks of ring 1 (re-placing and spreading apps) is no route of its API.
		{"tenant retires its app", "DELETE", "/v1/tenants/acme/apps/web?retire=1", asAcme, "", 400, "bad_query", ""},
		{"admin retires an app", "DELETE", "/v1/tenants/acme/apps/web?retire=1", asAdmin, "", 400, "bad_query", ""},
		{"tenant exports its app", "GET", "/v1/tenants/acme/apps/web/export", asAcme, "", 404, "no_route", ""},
		{"tenant imports an app", "POST", "/v1/tenants/acme/apps/web/import", asAcme, "{}", 404, "no_route", ""},
		{"admin lists what runs", "GET", "/v1/running", asAdmin, "", 404, "no_route", ""},
		{"tenant sets its share", "PUT", "/v1/tenants/acme/apps/web/share", asAcme, `{"slot":0,"of":1}`, 404, "no_route", ""},
		{"admin sets a share", "PUT", "/v1/tenants/acme/apps/web/share", asAdmin, `{"slot":0,"of":1}`, 404, "no_route", ""},
		{"tenant follows a release", "POST", "/v1/tenants/acme/apps/web/import?follow=1", asAcme, "{}", 404, "no_route", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := []string{"Enjin-Caller", "admin", "Content-Type", "application/json"}
			if tt.auth != "" {
				hdr = append(hdr, "Authorization", tt.auth)
			}
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			r := e.do(t, tt.method, tt.path, body, hdr...)
			seen := f.take()
			if r.status != tt.status || tt.code != "" && str(r.json, "code") != tt.code {
				t.Fatalf("got %d %s want %d %s", r.status, r.body, tt.status, tt.code)
			}
			if tt.status >= 400 && r.header.Get("Content-Type") != "application/json" {
				t.Errorf("error Content-Type %q want application/json", r.header.Get("Content-Type"))
			}
			switch {
			case tt.caller == "" && len(seen) != 0:
				t.Fatalf("ring 1 was reached: %+v", seen)
			case tt.caller == "":
			case len(seen) != 1:
				t.Fatalf("ring 1 saw %d requests want 1", len(seen))
			case seen[0].header.Get("Enjin-Caller") != tt.caller || len(seen[0].header.Values("Enjin-Caller")) != 1:
				t.Fatalf("ring 1 saw Enjin-Caller %q want %q", seen[0].header.Values("Enjin-Caller"), tt.caller)
			case tt.method == "PATCH" && (seen[0].body != tt.body || seen[0].method != "PATCH"):
				t.Fatalf("ring 1 saw %s %q want PATCH %q", seen[0].method, seen[0].body, tt.body)
			case tt.method == "GET" && seen[0].query != query(tt.path):
				t.Fatalf("ring 1 saw query %q", seen[0].query)
			}
		})
	}
}

// TestForwardFailure: a ring 1 node that does not answer is a 502 in JSON.
func TestForwardFailure(t *testing.T) {
	e := newEnv(t)
	f, _, _ := startRing1(t, e, nil)
	f.srv.Close()
	r := e.do(t, "GET", "/v1/tenants/acme/apps/web/env", nil, "Authorization", asAdmin)
	var body struct{ Error, Code string }
	if r.status != http.StatusBadGateway || json.Unmarshal(r.body, &body) != nil || body.Code != "ring1_unavailable" {
		t.Fatalf("got %d %s want 502 ring1_unavailable", r.status, r.body)
	}
}

func query(path string) string {
	_, q, _ := strings.Cut(path, "?")
	return q
}

// Only the admin places an app on a node (node=, read by ring 0 and not passed on); anyone
// else naming one is refused before ring 1 hears of it.
func TestDeployPlacement(t *testing.T) {
	e := newEnv(t)
	f, asAcme, _ := startRing1(t, e, nil)
	for _, tt := range []struct {
		name, query, auth string
		status            int
		code              string
	}{
		{"tenant names a node", "?node=ring1-test", asAcme, 403, "forbidden"},
		{"reader names a node", "?node=ring1-test", asBob, 403, "forbidden"},
		{"admin names a bad node", "?node=Ring%201", asAdmin, 400, "bad_query"},
		{"admin names two", "?node=ring1-test&node=ring1-other", asAdmin, 400, "bad_query"},
		{"admin places it", "?node=ring1-test", asAdmin, 200, ""},
		{"tenant lets ring 0 place it", "", asAcme, 200, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, "POST", "/v1/tenants/acme/apps/web/releases"+tt.query, []byte("bundle"),
				"Authorization", tt.auth, "Content-Type", "application/gzip")
			seen := f.take()
			if r.status != tt.status || tt.code != "" && str(r.json, "code") != tt.code {
				t.Fatalf("got %d %s want %d %s", r.status, r.body, tt.status, tt.code)
			}
			switch {
			case tt.status >= 400 && len(seen) != 0:
				t.Fatalf("ring 1 was reached: %+v", seen)
			case tt.status < 400 && (len(seen) != 1 || seen[0].query != "" || seen[0].body != "bundle"):
				t.Fatalf("ring 1 saw %+v, want the bundle without node=", seen)
			}
		})
	}
}
