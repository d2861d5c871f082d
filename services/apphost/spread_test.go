package apphost_test

import (
	"bytes"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"enjin/services/apphost"
)

// names lists the app's instances that are not stopped, as type.index, sorted.
func names(t *testing.T, w *world, app string) []string {
	t.Helper()
	ps, err := w.host.Ps("acme", app)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range ps {
		if in.State != apphost.Stopped {
			out = append(out, in.Name)
		}
	}
	slices.Sort(out)
	return out
}

// An app spread over hosts runs, on each, its share of the instances of each type (index
// modulo the hosts); a share changes without the instances that stay being touched; a copy
// follows its home's new release, keeping its share; a share naming no slot is refused.
func TestSpreadShares(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	b := bundle(t, "web: ./sampleapp\nworker: ./sampleapp\n", `{"health":"/healthz","memory_mb":64}`)
	if _, err := w.deploy(ctx, "acme", "web", b); err != nil {
		t.Fatal(err)
	}
	if err := w.host.Scale(ctx, "acme", "web", "web", 3); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := w.host.Export(&out, "acme", "web", ""); err != nil {
		t.Fatal(err)
	}
	rec, pkg, err := apphost.ReadExport(&out, apphost.MaxBundle)
	if err != nil {
		t.Fatal(err)
	}
	// The copy ("copy", standing for the app on a second host) takes slot 1 of 2: web.1.
	if _, err := w.host.Import(ctx, "acme", "copy", rec, bytes.NewReader(pkg), apphost.Share{Slot: 1, Of: 2}, nil); err != nil {
		t.Fatal(err)
	}
	if got := names(t, w, "copy"); !slices.Equal(got, []string{"web.1"}) {
		t.Fatalf("slot 1 of 2 runs %v, want web.1", got)
	}
	before, _ := w.host.Ps("acme", "web")
	if err := w.host.Spread(ctx, "acme", "web", nil, apphost.Share{Slot: 0, Of: 2}); err != nil {
		t.Fatal(err)
	}
	if got := names(t, w, "web"); !slices.Equal(got, []string{"web.0", "web.2"}) {
		t.Fatalf("slot 0 of 2 runs %v, want web.0 web.2", got)
	}
	after, _ := w.host.Ps("acme", "web")
	for _, a := range after {
		for _, b := range before {
			if a.Name == b.Name && a.Name != "web.1" && a.ID != b.ID {
				t.Fatalf("%s was restarted by a share change (%s → %s)", a.Name, b.ID, a.ID)
			}
		}
	}
	if code, _ := w.get("web.acme.apps.test"); code != 200 {
		t.Fatalf("the app in its share: %d", code)
	}
	// The home scales; its copy gets the new scale with its share: web.1 and web.3.
	if err := w.host.Spread(ctx, "acme", "copy", map[string]int{"web": 4, "ghost": 1}, apphost.Share{Slot: 1, Of: 2}); err != nil {
		t.Fatal(err)
	}
	if got := names(t, w, "copy"); !slices.Equal(got, []string{"web.1", "web.3"}) {
		t.Fatalf("slot 1 of 2 of 4 runs %v, want web.1 web.3", got)
	}
	// The home's new release: the copy follows, as its release 2, share kept.
	next := rec
	next.Release, next.Env, next.Scale = 7, map[string]string{"GREETING": "hey"}, map[string]int{"web": 4}
	r, err := w.host.Follow(ctx, "acme", "copy", next, bytes.NewReader(pkg), nil)
	if err != nil || r.Number != 2 {
		t.Fatalf("follow: %+v %v", r, err)
	}
	if got := names(t, w, "copy"); !slices.Equal(got, []string{"web.1", "web.3"}) {
		t.Fatalf("after following, the copy runs %v, want web.1 web.3", got)
	}
	var run apphost.Running
	for _, x := range w.host.Running() {
		if x.App == "copy" {
			run = x
		}
	}
	if run.From != 7 || run.Share != (apphost.Share{Slot: 1, Of: 2}) || run.Instances["web"] != 4 || run.Release != 2 {
		t.Fatalf("running: %+v", run)
	}
	// Back to every instance: the app alone again.
	if err := w.host.Spread(ctx, "acme", "copy", nil, apphost.Share{}); err != nil {
		t.Fatal(err)
	}
	if got := names(t, w, "copy"); len(got) != 4 {
		t.Fatalf("unshared, the copy runs %v, want 4 web instances", got)
	}
	for _, bad := range []apphost.Share{{Slot: 2, Of: 2}, {Slot: -1, Of: 3}, {Slot: 0, Of: -1}, {Slot: 1, Of: 0}, {Slot: 0, Of: 1000}} {
		if err := w.host.Spread(ctx, "acme", "copy", nil, bad); err == nil {
			t.Fatalf("share %+v taken", bad)
		}
	}
	// An app that keeps to one host says so to ring 0.
	if _, err := w.deploy(ctx, "acme", "alone", bundle(t, "web: ./sampleapp\n", `{"health":"/healthz","spread":false}`)); err != nil {
		t.Fatal(err)
	}
	for _, x := range w.host.Running() {
		if (x.App == "alone") != x.OneHost {
			t.Fatalf("running %s: one_host %v", x.App, x.OneHost)
		}
	}

	// Over HTTP (ring 0's calls): bad shares and bodies are 4xx, with nothing changed.
	h := w.host.Handler("tok")
	call := func(method, path, body string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Enjin-Caller", "admin")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	const p = "/v1/tenants/acme/apps/copy"
	for _, c := range []struct{ method, path, body string }{
		{"PUT", p + "/share", `{"slot":3,"of":2}`},
		{"PUT", p + "/share", `{"slot":"x"}`},
		{"PUT", p + "/share", `not json`},
		{"PUT", p + "/share", `{"slot":0,"of":2,"scale":{"web":100000}}`},
		{"PUT", "/v1/tenants/acme/apps/nothere/share", `{"slot":0,"of":2}`},
		{"POST", p + "/import?of=abc", ""},
		{"POST", p + "/import?slot=5&of=2", ""},
		{"POST", p + "/import?follow=1", "not a tar"},
	} {
		if code, body := call(c.method, c.path, c.body); code < 400 || code >= 500 || !strings.Contains(body, "{") {
			t.Errorf("%s %s %q: %d %s, want a 4xx with a JSON body", c.method, c.path, c.body, code, body)
		}
	}
	if got := names(t, w, "copy"); len(got) != 4 {
		t.Fatalf("after refused calls, the copy runs %v, want 4 web instances", got)
	}
	if code, body := call("PUT", p+"/share", `{"slot":1,"of":2}`); code != 204 {
		t.Fatalf("PUT share: %d %s", code, body)
	}
	if got := names(t, w, "copy"); !slices.Equal(got, []string{"web.1", "web.3"}) {
		t.Fatalf("after PUT share, the copy runs %v, want web.1 web.3", got)
	}
	t.Logf("web.0 web.2 here, web.1 web.3 in the copy; the copy followed release 7 as its release %d", r.Number)
}
