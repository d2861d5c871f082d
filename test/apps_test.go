package test

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"enjin/bus"
	"enjin/bus/broker"
	"enjin/keys"
	"enjin/test/harness"
)

// TestAppsEndToEnd is the README's example: `enjin up`, create a tenant, deploy the sample
// app, reach it through the router by Host and by DNS name, scale it, read its logs, and stop
// everything with SIGTERM.
func TestAppsEndToEnd(t *testing.T) {
	dir, err := os.MkdirTemp("/tmp", "enjin-apps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	state := filepath.Join(dir, "state")
	p, ep := up(t, state, harness.FreePort(t))
	cli := func(args ...string) string {
		out, err := exec.Command(harness.Binary(t), append(args, "--state-dir", state)...).CombinedOutput()
		if err != nil {
			t.Fatalf("enjin %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	app := filepath.Join(dir, "hello")
	os.MkdirAll(app, 0o755)
	if out, err := exec.Command("go", "build", "-o", filepath.Join(app, "sampleapp"), "./sampleapp").CombinedOutput(); err != nil {
		t.Fatalf("build sampleapp: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(app, "Procfile"), []byte("web: ./sampleapp\n"), 0o644)
	os.WriteFile(filepath.Join(app, "enjin.json"), []byte(`{"health":"/healthz","memory_mb":64}`), 0o644)

	cli("tenants", "create", "acme")
	out := cli("apps", "deploy", app, "--tenant", "acme", "--name", "hello")
	if !strings.Contains(out, "release 1") || !strings.Contains(out, "hello.acme."+ep.AppsDomain) {
		t.Fatalf("deploy said:\n%s", out)
	}
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", "http://"+ep.Router+"/", nil)
		req.Host = "hello.acme." + ep.AppsDomain
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || !strings.Contains(body, "hello from hello release 1") {
		t.Fatalf("through the router: %d %q", code, body)
	}
	// DNS answers the app's name with the router's address.
	m := new(dns.Msg)
	m.SetQuestion("hello.acme."+ep.AppsDomain+".", dns.TypeA)
	r, err := dns.Exchange(m, ep.DNS)
	if err != nil || len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "127.0.0.1") {
		t.Fatalf("dns: %v %v", err, r)
	}
	m.SetQuestion("nope.acme."+ep.AppsDomain+".", dns.TypeA)
	if r, err := dns.Exchange(m, ep.DNS); err != nil || r.Rcode != dns.RcodeNameError {
		t.Fatalf("dns for an unknown app: %v %v", err, r)
	}

	cli("apps", "scale", "acme/hello", "web=3")
	if out := cli("apps", "ps", "acme/hello"); strings.Count(out, "healthy") != 3 {
		t.Fatalf("ps after scale:\n%s", out)
	}
	if out := cli("logs", "acme/hello"); !strings.Contains(out, "request GET /") {
		t.Fatalf("logs:\n%s", out)
	}
	// Log lines also go on the bus, published by ring 1 as each instance's own tenant user,
	// and reach ring 1's account under the tenant's prefix.
	chain, err := keys.Load(state)
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := broker.IssuerFor(chain, keys.RING1)
	sinkCreds, err := iss.Mint(keys.UserRequest{Name: "log-sink", Perms: keys.Permissions{SubAllow: []string{"r1.from.>"}, PubDeny: []string{">"}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sink, err := bus.Connect(ep.NATS, sinkCreds)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	logs, _ := sink.SubscribeSync("r1.from.acme.*.log")
	sink.Flush()
	get()
	line, err := logs.NextMsg(5 * time.Second)
	if err != nil || !strings.Contains(string(line.Data), "request GET /") {
		t.Fatalf("no log line on the bus: %v %v", err, line)
	}
	// Each instance is a ring 2 node, observed and signed for by its ring 1 node.
	var nodes struct {
		Nodes []struct {
			ID         string            `json:"id"`
			State      string            `json:"state"`
			ParentNode string            `json:"parent_node"`
			Metadata   map[string]string `json:"metadata"`
		} `json:"nodes"`
	}
	harness.Eventually(t, 10*time.Second, func() bool {
		apiGet(t, ep, "/v1/nodes?ring=2&state=up&metadata.app=hello", &nodes)
		return len(nodes.Nodes) == 3
	}, "three ring 2 nodes up")
	for _, n := range nodes.Nodes {
		if n.ParentNode != "ring1-local" || n.Metadata["tenant"] != "acme" {
			t.Fatalf("ring 2 node %+v", n)
		}
	}
	var obs struct {
		Observations []struct {
			Observer string `json:"observer"`
		} `json:"observations"`
	}
	apiGet(t, ep, "/v1/nodes/"+nodes.Nodes[0].ID+"/observations?limit=5", &obs)
	if len(obs.Observations) == 0 || obs.Observations[0].Observer != "ring1-local" {
		t.Fatalf("observations of %s: %+v", nodes.Nodes[0].ID, obs)
	}
	if out := cli("verify"); !strings.Contains(out, " 0 failed") {
		t.Fatalf("verify:\n%s", out)
	} else {
		t.Logf("enjin verify: %s", strings.TrimSpace(out))
	}
	checkBids(t, state, "acme", "hello")

	// The tenant's own token reaches its apps and nothing else.
	tok := strings.TrimSpace(cli("tenants", "token", "acme"))
	asTenant := func(args ...string) (string, error) {
		cmd := exec.Command(harness.Binary(t), args...)
		cmd.Env = append(os.Environ(), "ENJIN_API="+ep.API, "ENJIN_TOKEN="+tok)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := asTenant("apps", "ps", "acme/hello"); err != nil || strings.Count(out, "healthy") != 3 {
		t.Fatalf("tenant's own ps: %v\n%s", err, out)
	}
	if out, err := asTenant("nodes"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("tenant listed nodes: %v\n%s", err, out)
	}

	// Destroying the app stops its instances and revokes their bus identities.
	cli("apps", "destroy", "acme/hello")
	if code, _ := get(); code != 404 {
		t.Fatalf("destroyed app answers %d", code)
	}
	harness.Eventually(t, 10*time.Second, func() bool {
		a, err := chain.Account(keys.TenantAccount("acme"))
		if err != nil {
			return false
		}
		ac, _ := a.Claims()
		return ac != nil && len(ac.Revocations) >= 3
	}, "the destroyed instances' users revoked")

	// Deleting the tenant stops everything it has.
	cli("apps", "deploy", app, "--tenant", "acme", "--name", "hello")
	if code, _ := get(); code != 200 {
		t.Fatalf("redeployed app answers %d", code)
	}
	cli("tenants", "delete", "acme")
	if code, _ := get(); code != 404 {
		t.Fatalf("app of a deleted tenant answers %d", code)
	}

	// SIGTERM stops enjin up, its ring 1 node and every app instance.
	children := descendants(p.Cmd.Process.Pid)
	p.Cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, p, 60*time.Second)
	for _, pid := range children {
		if harness.Alive(pid) {
			t.Errorf("process %d (%s) still running after enjin up stopped", pid, cmdline(pid))
		}
	}
	t.Logf("deployed, reached by Host and DNS, scaled to 3; SIGTERM stopped %d processes", len(children))
}
