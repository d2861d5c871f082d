package test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"enjin/test/harness"
)

// hostileMarkup is shown in the web view as a node's metadata and a tenant's: it must appear
// as text and never run.
const hostileMarkup = `<img src=x onerror="window.__pwned=1;alert(1)">`

// TestWebView drives ring 0's web view in a real headless Chromium against a whole cloud
// (`enjin up`): it logs in with the admin token through the form, sees ring 0's leader and
// ring1-local up with its newest observation verified, watches an app deployed with the CLI appear without a
// reload, and checks that markup in a node's metadata and a tenant's shows as text and runs
// nothing (no alert, no <img>, window.__pwned unset). A screenshot is left in
// test/output/ui.png.
func TestWebView(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium (test/run installs Debian's): %v", err)
	}
	c := newCloud(t)
	c.start()
	c.patchNodeMetadata("ring1-local", map[string]any{"note": hostileMarkup})

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 1000))
	actx, stopBrowser := chromedp.NewExecAllocator(t.Context(), opts...)
	defer stopBrowser()
	ctx, closeTab := chromedp.NewContext(actx)
	defer closeTab()
	var dialogs atomic.Int32
	events := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() { // ends when the tab closes
		for _, err := range events {
			if err != nil {
				return
			}
			dialogs.Add(1)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	eval := func(expr string) string {
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := chromedp.Run(ectx, chromedp.Evaluate[string](expr))
		if err != nil {
			return "error: " + err.Error()
		}
		return s
	}
	text := func(css string) string {
		return eval(`(document.querySelector(` + jsString(css) + `) || {}).textContent || ""`)
	}

	// Logging in, through the form: /ui sends the browser to it.
	tok, err := os.ReadFile(c.ep.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(c.ep.API+"/ui"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), strings.TrimSpace(string(tok))), chromedp.Click(chromedp.ID("login"))); err != nil {
		t.Fatalf("log in: %v", err)
	}
	row := `tr[data-node="ring1-local"]`
	if !harness.Poll(15*time.Second, func() bool {
		return text(row+" td.state") == "up" && strings.HasPrefix(text(row+" td.sig"), "✓ verified") && text(row+" td.seq") != "—"
	}) {
		t.Fatalf("ring1-local not shown up and verified: at %q (%q), state %q, signature %q, seq %q", eval("location.pathname"),
			text("#error"), text(row+" td.state"), text(row+" td.sig"), text(row+" td.seq"))
	}
	if m := text(`tr[data-member] td.ok`); !strings.HasPrefix(m, "leader") {
		t.Errorf("ring 0's leader not shown: %q", text(`div[data-ring="0"]`))
	}
	t.Logf("logged in and saw ring1-local up, seq %s, %s, in %v", text(row+" td.seq"), text(row+" td.sig"), time.Since(t0).Round(time.Millisecond))

	// An app deployed with the CLI appears on the open page, without a reload.
	eval(`window.__sameLoad = "yes"`)
	if code, b := c.apiDo("POST", "/v1/tenants", map[string]any{"name": "acme", "metadata": map[string]any{"note": hostileMarkup}}); code != 201 {
		t.Fatalf("create tenant: %d %s", code, b)
	}
	t1 := time.Now()
	c.cli("apps", "deploy", "acme/web", c.sample, "-q")
	deployed := time.Since(t1)
	app := `[data-app="acme/web"]`
	if !harness.Poll(15*time.Second, func() bool {
		return text(app+` tr[data-release="1"] td.state`) == "live" && text(app+" tr[data-instance] td.state") != ""
	}) {
		t.Fatalf("acme/web not shown: apps section %q", text("#apps"))
	}
	if got := eval(`window.__sameLoad || "reloaded"`); got != "yes" {
		t.Fatalf("the page reloaded to show the app (%q)", got)
	}
	t.Logf("acme/web deployed in %v, on the page %v after; instance %s", deployed.Round(time.Millisecond),
		(time.Since(t1) - deployed).Round(time.Millisecond), text(app+" tr[data-instance] td.state"))

	// A compartment's usage, as ring 0 rolls it up, under its heading: a rack holding a node
	// that has said nothing yet.
	var comp struct{ ID string }
	if err := json.Unmarshal([]byte(c.cli("compartments", "create", "--type", "rack", "--label", "rack-ui", "-o", "json")), &comp); err != nil || comp.ID == "" {
		t.Fatalf("compartments create: %v", err)
	}
	if code, b := c.apiDo("POST", "/v1/nodes", map[string]any{"id": "edge-ui", "ring": 1, "supervision_strategy": "external",
		"observation_strategy": "self", "compartment": comp.ID}); code != 201 {
		t.Fatalf("register edge-ui: %d %s", code, b)
	}
	usage := `p.usage[data-compartment="` + comp.ID + `"]`
	if !harness.Poll(15*time.Second, func() bool { return strings.HasPrefix(text(usage), "Usage: 1 node (0 up, 0 reporting)") }) {
		t.Fatalf("rack-ui's usage not shown: %q (ring 1: %q)", text(usage), text(`div[data-ring="1"]`))
	}
	t.Logf("rack-ui: %s", text(usage))

	// Markup in the inventory is text: shown literally, no element made of it, nothing run.
	if m := text(row + " td.meta"); !strings.Contains(m, "note: "+hostileMarkup) {
		t.Errorf("ring1-local's metadata shown as %q, want the markup as text", m)
	}
	if m := text(`[data-tenant="acme"] .meta`); !strings.Contains(m, "note: "+hostileMarkup) {
		t.Errorf("acme's metadata shown as %q, want the markup as text", m)
	}
	if n := eval(`String(document.querySelectorAll("img").length)`); n != "0" {
		t.Errorf("%s <img> elements on the page, want 0", n)
	}
	if p := eval(`String(window.__pwned)`); p != "undefined" || dialogs.Load() != 0 {
		t.Errorf("the markup ran: window.__pwned %s, %d dialogs", p, dialogs.Load())
	}

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll("output", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("output", "ui.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}

	// Logging out ends the session: the page's data calls are refused, without a challenge
	// that would have the browser prompt for a password.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("logout"))); err != nil {
		t.Fatalf("log out: %v", err)
	}
	if !harness.Poll(10*time.Second, func() bool { return eval("location.pathname") == "/ui/login" }) {
		t.Fatalf("after logout the browser is at %q", eval("location.pathname"))
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if got, err := chromedp.Run(fctx, chromedp.Evaluate[string](`fetch("/v1/nodes").then(r => r.status + " " + r.headers.get("WWW-Authenticate"))`,
		chromedp.EvalAwaitPromise)); got != `401 Bearer realm="enjin"` {
		t.Fatalf("the page's data call after logout: %q %v, want 401 with no Basic challenge (which would prompt for a password)", got, err)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// patchNodeMetadata sets node's metadata through the API, as the admin.
func (c *cloud) patchNodeMetadata(node string, meta map[string]any) {
	c.t.Helper()
	tok, err := os.ReadFile(c.ep.AdminTokenFile)
	if err != nil {
		c.t.Fatal(err)
	}
	auth := "Bearer " + strings.TrimSpace(string(tok))
	req, _ := http.NewRequest("GET", c.ep.API+"/v1/nodes/"+node, nil)
	req.Header.Set("Authorization", auth)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	res.Body.Close()
	body, _ := json.Marshal(map[string]any{"metadata": meta})
	req, _ = http.NewRequest("PATCH", c.ep.API+"/v1/nodes/"+node, bytes.NewReader(body))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("If-Match", res.Header.Get("ETag"))
	if res, err = http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		c.t.Fatalf("patch %s's metadata: %v %v", node, err, res)
	}
	res.Body.Close()
}
