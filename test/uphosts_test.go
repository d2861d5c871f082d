package test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"enjin/test/harness"
)

// TestUpRing1Hosts runs `enjin up --ring1 3`: ring1-local and two more ring 1 hosts, each in
// a network namespace of its own on a bridge `enjin up` makes, all up. An app placed on a
// simulated host answers through the router `enjin up` prints — which sends its requests to
// that host's router — and through the host's own; an app on another host answers through
// it too. A tenant's apps placed by ring 0 spread over the three hosts. Stopped, the cloud
// takes its namespaces and bridge away.
func TestUpRing1Hosts(t *testing.T) {
	c := newCloud(t)
	n := harness.FreePort(t)%200 + 20
	c.args = append(c.args, "--ring1", "3", "--hosts-prefix", fmt.Sprintf("198.18.%d.0/24", n))
	t.Cleanup(func() { // whatever the test left, after the cloud's own cleanup
		for _, h := range []string{"-h2", "-h3"} {
			exec.Command("ip", "netns", "del", c.bridge+h).Run()
		}
		exec.Command("ip", "link", "del", c.bridge+"f").Run()
	})
	c.start()
	for _, id := range []string{"ring1-h2", "ring1-h3"} {
		harness.Eventually(t, 60*time.Second, func() bool {
			out, err := c.apiGet("/v1/nodes/" + id)
			return err == nil && strings.Contains(string(out), `"state":"up"`)
		}, "%s up (enjin up said: %s)", id, c.proc.Out)
	}
	if out := c.cli("nodes"); strings.Count(out, " up ") < 3 {
		t.Fatalf("enjin nodes: want three ring 1 hosts up:\n%s", out)
	}
	c.cli("tenants", "create", "acme")
	c.cli("apps", "deploy", "acme/hello", c.sample, "--node", "ring1-h2", "-q")
	c.cli("apps", "deploy", "acme/other", c.sample, "--node", "ring1-h3", "-q")
	host := func(app string) string { return app + ".acme." + c.ep.AppsDomain }
	h2 := fmt.Sprintf("198.18.%d.2:7080", n)
	for _, x := range []struct{ ns, router, app string }{
		{"", c.ep.Router, "hello"},                        // the router enjin up printed
		{c.bridge + "-h2", h2, "hello"},                   // the host's own
		{c.bridge + "-h3", h2, "hello"},                   // another host, asking h2's router
		{c.bridge + "-h2", h2, "other"},                   // h2's router, for h3's app
		{"", fmt.Sprintf("198.18.%d.3:7080", n), "other"}, // h3's router, from here
	} {
		harness.Eventually(t, 30*time.Second, func() bool {
			code, body := getVia(x.ns, x.router, host(x.app))
			return code == 200 && strings.Contains(body, "hello from "+x.app)
		}, "acme/%s through %s (from namespace %q)", x.app, x.router, x.ns)
	}
	// A tenant's apps, placed by ring 0, spread over the hosts: three apps, three hosts.
	c.cli("tenants", "create", "beta")
	nodes := map[string]bool{}
	for _, app := range []string{"x", "y", "z"} {
		c.cli("apps", "deploy", "beta/"+app, c.sample, "-q")
		nodes[c.placementOf("beta", app).Node] = true
	}
	if len(nodes) != 3 {
		t.Fatalf("beta's three apps went to %v; want one on each host", nodes)
	}
	c.proc.Stop(time.Minute)
	for _, h := range []string{"-h2", "-h3"} {
		if _, err := os.Stat("/run/netns/" + c.bridge + h); err == nil {
			t.Fatalf("namespace %s%s left after enjin up stopped", c.bridge, h)
		}
	}
	t.Logf("3 ring 1 hosts (2 in namespaces); apps on each answer through every router")
}
