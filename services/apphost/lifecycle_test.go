package apphost_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"enjin/services/apphost"
	"enjin/supervisors/sandbox"
	"enjin/test/harness"
)

// A release that cannot get healthy is refused with the reason, as soon as it is clear: an
// instance that keeps crashing ends the deploy in about a second with its exit status and last
// lines, not at the health timeout; one killed for memory says so.
func TestDeployFailureSaysWhy(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.deploy(ctx, "acme", "ok", bundle(t, "web: ./sampleapp\n", `{"health":"/healthz"}`)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err := w.deploy(ctx, "acme", "ok", bundle(t, "web: ./sampleapp\n", `{"health":"/healthz","env":{"CRASH":"1"}}`))
	var de *apphost.DeployError
	if !errors.As(err, &de) || !errors.Is(err, apphost.ErrUnhealthy) || de.Reason == nil {
		t.Fatalf("crashing release: %v, want a DeployError with a reason", err)
	}
	took := time.Since(t0)
	if de.Reason.Exit != "exit status 3" || !contains(de.Reason.Logs, "crashing on purpose") || de.Reason.Instance != "web.0" {
		t.Fatalf("reason %+v", de.Reason)
	}
	if took > 4*time.Second { // the health timeout is 5 s here
		t.Fatalf("a crash loop took %v to be refused", took)
	}
	if code, body := w.get("ok.acme.apps.test"); code != 200 || !strings.Contains(body, "release 1") {
		t.Fatalf("the previous release stopped serving: %d %q", code, body)
	}
	t.Logf("crash loop refused in %v: %s: %s, last line %q", took.Round(time.Millisecond), de.Reason.Instance, de.Reason.Exit, de.Reason.Logs[len(de.Reason.Logs)-1])

	// Out of memory: a worker that allocates past its limit.
	_, err = w.deploy(ctx, "acme", "hog", bundle(t, "web: echo filling; exec python3 -c 'b = b\"x\" * (200 << 20)'\n", `{"health":"/healthz","memory_mb":32}`))
	if !errors.As(err, &de) || de.Reason == nil || !strings.Contains(de.Reason.Exit, "out of memory (limit 32 MiB)") {
		t.Fatalf("memory hog: %v (reason %+v), want out of memory", err, reason(de))
	}
	t.Logf("memory hog refused: %s", de.Reason.Exit)
	if n := leftovers(t, w); n != 1 {
		t.Fatalf("%d namespaces after the failed deploys, want 1 (the live instance)", n)
	}
}

func reason(de *apphost.DeployError) *apphost.Reason {
	if de == nil {
		return nil
	}
	return de.Reason
}

// leftovers counts the network namespaces of the world's bridge.
func leftovers(t *testing.T, w *world) int {
	ns, _ := filepath.Glob("/run/netns/enjin-" + w.net.Bridge + "-*")
	return len(ns)
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// An ordinary app works: a Python web server started by the Procfile serves the files of its
// own release from its working directory, /app, and writes to its HOME, which keeps what it
// wrote across a restart of the node.
func TestOrdinaryAppsWork(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatalf("this test needs Debian's /usr/bin/python3 (./test/run installs it): %v", err)
	}
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.deploy(ctx, "acme", "files", bundle(t,
		"web: echo kept > $HOME/note && exec python3 -m http.server $PORT\n", `{"health":"/Procfile"}`)); err != nil {
		lines, _, _, _ := w.host.Logs("acme", "files", 20, false)
		t.Fatalf("%v: %+v", err, lines)
	}
	req, _ := http.NewRequest("GET", w.url+"/Procfile", nil)
	req.Host = "files.acme.apps.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(body.String(), "python3 -m http.server") {
		t.Fatalf("GET /Procfile of its own release: %d %q", resp.StatusCode, body.String())
	}
	note := filepath.Join(w.dir, "apps", "acme", "files", "home", "note")
	if b, err := os.ReadFile(note); err != nil || string(b) != "kept\n" {
		t.Fatalf("HOME/note: %q %v", b, err)
	}
}

// After the node dies without stopping anything (its instances still run), a new host on the
// same state kills them by cgroup, removes their namespaces and devices, and starts the live
// release again — still live, never failed — with the same HOME.
func TestRestoreSweepsAnEarlierRun(t *testing.T) {
	// The earlier host is abandoned, not killed: it lives on in this process, so its word
	// to the router is cut off as a dead node's would be.
	var dead atomic.Bool
	w := newWorldWith(t, func(c *apphost.Config) { c.Router = muted{c.Router, &dead} })
	ctx := t.Context()
	if _, err := w.deploy(ctx, "acme", "web", bundle(t, "web: ./sampleapp\n", `{"health":"/healthz","instances":{"web":2}}`)); err != nil {
		t.Fatal(err)
	}
	old, _ := w.host.Ps("acme", "web")
	// A new host on the same directory, cgroups and network: the old one is abandoned, as a
	// SIGKILLed node's would be.
	cg, err := sandbox.DetectCgroups(testCgroups)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := apphost.New(apphost.Config{Dir: w.dir, Node: "ring1-test", Helper: helper, Network: w.net, Cgroups: cg,
		Router: adapter{w.router}, Grace: 2 * time.Second, HealthTimeout: 5 * time.Second, HealthEvery: 50 * time.Millisecond,
		Logger: harness.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h2.Close() })
	dead.Store(true)
	if err := h2.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	for _, in := range old {
		if harness.Alive(in.PID) {
			t.Fatalf("instance %s (pid %d) of the earlier run still runs", in.Name, in.PID)
		}
	}
	harness.Eventually(t, 10*time.Second, func() bool {
		ps, _ := h2.Ps("acme", "web")
		n := 0
		for _, p := range ps {
			if p.State == apphost.Healthy {
				n++
			}
		}
		return n == 2
	}, "two instances healthy again")
	if code, _ := w.get("web.acme.apps.test"); code != 200 {
		t.Fatalf("after restore: %d", code)
	}
	rs, _ := h2.Releases("acme", "web")
	if len(rs) != 1 || rs[0].Status != "live" {
		t.Fatalf("releases after restore: %+v", rs)
	}
	if n := leftovers(t, w); n != 2 {
		t.Fatalf("%d namespaces, want 2", n)
	}
}

// muted is a router that stops listening once dead is set.
type muted struct {
	apphost.Router
	dead *atomic.Bool
}

func (m muted) SetRoute(tenant, app string, rs []apphost.Route) {
	if !m.dead.Load() {
		m.Router.SetRoute(tenant, app, rs)
	}
}

func (m muted) RemoveRoute(tenant, app string) {
	if !m.dead.Load() {
		m.Router.RemoveRoute(tenant, app)
	}
}

// The env API: values only to the admin and the tenant, and only when asked; PATCH changes
// some variables and keeps the rest; a bad name is a 422 naming it.
func TestEnvAPI(t *testing.T) {
	w := newWorld(t)
	if _, err := w.deploy(t.Context(), "acme", "env", bundle(t, "web: ./sampleapp\n", `{"health":"/healthz"}`)); err != nil {
		t.Fatal(err)
	}
	h := w.host.Handler("tok")
	call := func(method, path, caller, body string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		if caller != "" {
			req.Header.Set("Enjin-Caller", caller)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	const env = "/v1/tenants/acme/apps/env/env"
	if code, body := call("PATCH", env, "admin", `{"set":{"A":"1","B":"secret"}}`); code != 200 || !strings.Contains(body, `"number":2`) {
		t.Fatalf("PATCH set: %d %s", code, body)
	}
	if code, body := call("PATCH", env, "tenant", `{"set":{"C":"3"},"unset":["A"]}`); code != 200 || !strings.Contains(body, `"number":3`) {
		t.Fatalf("PATCH set and unset: %d %s", code, body)
	}
	for _, c := range []struct {
		caller, query string
		code          int
		want, not     string
	}{
		{"admin", "?reveal=1", 200, `"B":"secret"`, `"A"`},
		{"tenant", "?reveal=1", 200, `"C":"3"`, ""},
		{"admin", "", 200, `"B":"********"`, "secret"},
		{"reader", "?reveal=1", 403, "forbidden", "secret"},
		{"", "?reveal=1", 403, "forbidden", "secret"},
		{"reader", "", 200, `"masked":true`, "secret"},
	} {
		code, body := call("GET", env+c.query, c.caller, "")
		if code != c.code || !strings.Contains(body, c.want) || (c.not != "" && strings.Contains(body, c.not)) {
			t.Errorf("GET env%s as %q: %d %s", c.query, c.caller, code, body)
		}
	}
	if _, body := call("GET", "/v1/tenants/acme/apps", "reader", ""); strings.Contains(body, "secret") {
		t.Errorf("the app list shows a reader a value: %s", body)
	}
	for _, bad := range []string{`{"set":{"PORT":"1"}}`, `{"set":{"A-B":"1"}}`, `{"set":{"X":"1"},"unset":["X"]}`, `{"set":{"ENJIN_X":"1"}}`} {
		if code, body := call("PATCH", env, "admin", bad); code != 422 || !strings.Contains(body, `"field":"env.`) {
			t.Errorf("PATCH %s: %d %s, want 422 naming the field", bad, code, body)
		}
	}
	if code, body := call("GET", env+"?reveal=1", "admin", ""); code != 200 || !strings.Contains(body, `"B":"secret"`) || strings.Contains(body, "PORT") {
		t.Errorf("after refused changes: %d %s", code, body)
	}
}

// Old releases and their packages are deleted beyond the last KeepReleases (here 3).
func TestOldReleasesArePruned(t *testing.T) {
	w := newWorldWith(t, func(c *apphost.Config) { c.KeepReleases = 3 })
	for i := range 6 {
		b := bundle(t, "web: ./sampleapp\n", `{"health":"/healthz","env":{"N":"`+strings.Repeat("x", i+1)+`"}}`)
		if _, err := w.host.Deploy(context.Background(), "acme", "gc", bytes.NewReader(b), nil); err != nil {
			t.Fatal(err)
		}
	}
	rs, _ := w.host.Releases("acme", "gc")
	if len(rs) != 3 || rs[0].Number != 4 || rs[2].Number != 6 || rs[2].Status != "live" {
		t.Fatalf("releases kept: %+v", rs)
	}
	all, _ := filepath.Glob(filepath.Join(w.dir, "apps", "acme", "gc", "releases", "*"))
	sums, _ := filepath.Glob(filepath.Join(w.dir, "apps", "acme", "gc", "releases", "*.files"))
	pkgs, _ := filepath.Glob(filepath.Join(w.dir, "packages", "*"))
	if dirs := len(all) - len(sums); dirs != 3 || len(sums) != 3 || len(pkgs) != 3 {
		t.Fatalf("%d release dirs, %d lists of their files and %d packages on disk, want 3 of each", dirs, len(sums), len(pkgs))
	}
}

// A line too long for the log is cut, and what the process writes after it is still logged;
// HOME is the app's alone (0700).
func TestLongLinesAndHome(t *testing.T) {
	w := newWorld(t)
	if _, err := w.deploy(t.Context(), "acme", "long", bundle(t,
		"web: head -c 200000 /dev/zero | tr '\\000' x; echo; echo after; ls -ld /home/app; exec ./sampleapp\n", `{"health":"/healthz"}`)); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 5*time.Second, func() bool {
		lines, _, _, _ := w.host.Logs("acme", "long", 10, false)
		var got []string
		for _, l := range lines {
			got = append(got, l.Line)
		}
		return contains(got, "after") && contains(got, "drwx------")
	}, "the line after the long one logged, and HOME 0700")
	lines, _, _, _ := w.host.Logs("acme", "long", 10, false)
	if len(lines[0].Line) != 64<<10 || strings.Trim(lines[0].Line, "x") != "" {
		t.Fatalf("the long line was logged as %d bytes", len(lines[0].Line))
	}
}

// Pack refuses what a bundle cannot hold rather than leaving it out: a symlinked enjin.json
// would otherwise deploy with the defaults instead of the limits it names.
func TestPackRefusesLinksAndPipes(t *testing.T) {
	for _, make := range []func(dir string) error{
		func(dir string) error { return os.Symlink("limits.json", filepath.Join(dir, "enjin.json")) },
		func(dir string) error { return syscall.Mkfifo(filepath.Join(dir, "enjin.json"), 0o600) },
		func(dir string) error { return os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")) },
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: ./x\n"), 0o644)
		if err := make(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := apphost.Pack(dir); err == nil || !strings.Contains(err.Error(), "regular files and directories only") {
			t.Errorf("Pack: %v, want a refusal", err)
		}
	}
}
