package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"enjin/test/harness"
)

// TestUpRing1Hosts runs `enjin up --ring1 3`: ring1-local and two more ring 1 hosts, each in
// a network namespace of its own on a bridge `enjin up` makes, all up. An app placed on a
// simulated host answers through the router `enjin up` prints — which sends its requests to
// that host's router — and through the host's own; an app on another host answers through
// it too. A tenant's apps placed by ring 0 spread over the three hosts, and so do one app's
// instances (spreadOverHosts). Stopped, the cloud takes its namespaces and bridge away.
func TestUpRing1Hosts(t *testing.T) {
	c := newCloud(t)
	n := harness.Unique(200) + 20
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
	spreadOverHosts(t, c, []string{c.ep.Router, h2, fmt.Sprintf("198.18.%d.3:7080", n)})
	c.proc.Stop(time.Minute)
	for _, h := range []string{"-h2", "-h3"} {
		if _, err := os.Stat("/run/netns/" + c.bridge + h); err == nil {
			t.Fatalf("namespace %s%s left after enjin up stopped", c.bridge, h)
		}
	}
	t.Logf("3 ring 1 hosts (2 in namespaces); apps on each answer through every router")
}

// spreadOverHosts scales acme/hello to three web instances on a cloud of three hosts whose
// routers are routers: one runs on each host, each host's router answers with its own, `enjin
// logs` (and -f) gathers every host's lines, and `enjin verify` checks the replicas' bids; a change at the app's home (its environment) is
// followed on every host (every instance new); scaled back to one, the app runs at home
// alone and still answers through every router; destroyed, it is gone from every host.
func spreadOverHosts(t *testing.T, c *cloud, routers []string) {
	t.Helper()
	type instance struct {
		ID, Name, State, Host string
	}
	ps := func() []instance {
		b, err := c.apiGet("/v1/tenants/acme/apps/hello/instances")
		if err != nil {
			return nil
		}
		var l struct{ Instances []instance }
		json.Unmarshal(b, &l)
		return l.Instances
	}
	host := "hello.acme." + c.ep.AppsDomain
	// answering is which instance answers through each router, if each answers.
	answering := func() []string {
		var ids []string
		for _, r := range routers {
			code, body := getVia("", r, host)
			_, id, ok := strings.Cut(strings.TrimSpace(body), " instance ")
			if code != 200 || !ok {
				return nil
			}
			ids = append(ids, id)
		}
		return ids
	}
	spreadAt := time.Now()
	c.cli("apps", "scale", "acme/hello", "web=3")
	var spread []instance
	harness.Eventually(t, 90*time.Second, func() bool {
		spread = ps()
		hosts := map[string]bool{}
		for _, in := range spread {
			if in.State == "healthy" {
				hosts[in.Host] = true
			}
		}
		return len(spread) == 3 && len(hosts) == 3
	}, "acme/hello's three web instances one on each host: %+v", spread)
	took := time.Since(spreadAt)
	byHost := map[string]string{}
	for _, in := range spread {
		byHost[in.ID] = in.Host
	}
	harness.Eventually(t, 30*time.Second, func() bool {
		ids := answering()
		seen := map[string]bool{}
		for _, id := range ids {
			seen[byHost[id]] = true
		}
		return len(seen) == 3 && !seen[""]
	}, "each host's router answering with its own instance of acme/hello")
	// Its logs are every host's: the past lines, then each new one as a host sends it.
	harness.Eventually(t, 20*time.Second, func() bool {
		out := c.cli("logs", "acme/hello", "--lines", "1000")
		for _, h := range []string{"ring1-local", "ring1-h2", "ring1-h3"} {
			if !strings.Contains(out, "@"+h+"[stdout]: listening on") {
				return false
			}
		}
		return true
	}, "enjin logs acme/hello with each host's instance starting")
	follow := exec.Command(harness.Binary(t), "logs", "acme/hello", "-f", "--lines", "1", "--state-dir", c.state)
	stdout, _ := follow.StdoutPipe()
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Kill(); follow.Wait() })
	followed := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			followed <- sc.Text()
		}
		close(followed)
	}()
	seen := map[string]bool{}
	harness.Eventually(t, 30*time.Second, func() bool {
		for _, r := range routers {
			getVia("", r, host) // each host's instance logs the request it answers
		}
		for {
			select {
			case l := <-followed:
				if _, h, ok := strings.Cut(l, "@"); ok && strings.Contains(l, "request GET /") {
					h, _, _ = strings.Cut(h, "[")
					seen[h] = true
				}
				continue
			default:
			}
			return len(seen) == 3
		}
	}, "enjin logs -f acme/hello following every host's new lines (saw %v)", seen)
	follow.Process.Kill()
	if out := c.cli("apps", "ls", "acme"); !strings.Contains(out, "(+") {
		t.Fatalf("enjin apps ls shows no host beside hello's home:\n%s", out)
	}
	if out := c.cli("placements"); strings.Count(out, "replica ") != 2 {
		t.Fatalf("enjin placements: want two replica rows for acme/hello:\n%s", out)
	}
	if out := c.cli("verify"); !strings.Contains(out, ": 0 failed") {
		t.Fatalf("enjin verify with replicas:\n%s", out)
	}

	// A change at home is followed everywhere: every instance is new.
	c.cli("apps", "env", "acme/hello", "GREETING=spread")
	old := map[string]bool{}
	for _, in := range spread {
		old[in.ID] = true
	}
	harness.Eventually(t, 90*time.Second, func() bool {
		now := ps()
		hosts := map[string]bool{}
		for _, in := range now {
			if old[in.ID] || in.State != "healthy" {
				return false
			}
			hosts[in.Host] = true
		}
		return len(hosts) == 3
	}, "acme/hello's new release running on all three hosts")

	// Back to one instance: the home runs it alone; every router still answers.
	c.cli("apps", "scale", "acme/hello", "web=1")
	harness.Eventually(t, 90*time.Second, func() bool {
		now := ps()
		return len(now) == 1 && now[0].State == "healthy" && len(answering()) == len(routers)
	}, "acme/hello back at home alone, answering through every router: %+v", ps())
	if p := c.placementOf("acme", "hello"); p.Node != "ring1-h2" {
		t.Fatalf("acme/hello's home moved: %+v", p)
	}
	// The replicas scaled away are destroyed, HOME and all: a scale down keeps nothing aside.
	harness.Eventually(t, 30*time.Second, func() bool {
		kept := 0
		filepath.WalkDir(c.state, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
			case d.IsDir() && (d.Name() == "sandbox" || d.Name() == "releases" || d.Name() == "home"):
				return fs.SkipDir
			case strings.Contains(p, "/apps/retired/acme/hello-"):
				kept++
			}
			return nil
		})
		return kept == 0 && strings.Count(c.cli("apps", "ls", "acme"), "(+") == 0
	}, "the scaled-away replicas of acme/hello gone, nothing kept aside")

	c.cli("apps", "destroy", "acme/hello")
	harness.Eventually(t, 30*time.Second, func() bool {
		for _, r := range routers {
			if code, _ := getVia("", r, host); code != 404 {
				return false
			}
		}
		return true
	}, "acme/hello gone from every router")
	t.Logf("acme/hello spread over 3 hosts %.1f s after `enjin apps scale web=3`; followed its home's new release; back home alone at web=1", took.Seconds())
}
