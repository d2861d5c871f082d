package test

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"enjin/test/harness"
)

// placement is an app's entry in GET /v1/placements.
type placement struct {
	Kind        string `json:"kind"`
	Tenant      string `json:"tenant"`
	App         string `json:"app"`
	Node        string `json:"node"`
	KeptRelease int    `json:"kept_release"`
	MovedFrom   string `json:"moved_from"`
}

// placementOf reads where tenant/app is placed, as ring 0 says.
func (c *cloud) placementOf(tenant, app string) placement {
	b, err := c.apiGet("/v1/placements")
	if err != nil {
		return placement{}
	}
	var list struct {
		Placements []placement `json:"placements"`
	}
	json.Unmarshal(b, &list)
	for _, p := range list.Placements {
		if p.Kind == "app" && p.Tenant == tenant && p.App == app {
			return p
		}
	}
	return placement{}
}

// getVia asks router (inside network namespace ns, or here if ns is "") for host's "/".
func getVia(ns, router, host string) (int, string) {
	tr := &http.Transport{}
	if ns != "" {
		tr.Dial = harness.Dialer(ns)
	}
	cl := http.Client{Timeout: 3 * time.Second, Transport: tr}
	defer cl.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+router+"/", nil)
	req.Host = host
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAppsMoveOffADownHost: with 5 s heartbeats, a ring 1 host in a network namespace of its
// own is cut off (its link set down). Its app runs two instances, spread by ring 0 over it
// and a replica. Ring 0 judges the host down, re-places its app — env and scale as they were
// — on the replica, which runs both instances, and the app serves there within 40 s of the
// cut (the time is printed); meanwhile the replica's router answers for it without fail.
// When the host's link comes back, the host is up again and its
// copy of the app is destroyed: the app runs once, where ring 0 placed it, and `enjin
// verify` checks the new placement's bid. Then the app's new replica's host is cut off: the
// replica is dropped, its instance runs elsewhere, and the home's router never fails.
func TestAppsMoveOffADownHost(t *testing.T) {
	fab := harness.NewFabric(t, 2)
	c := newCloud(t)
	// Ring 0 and the router of the node `enjin up` runs listen on the fabric, as the joined
	// hosts' routers do: every router reaches every other.
	var router string
	for i, a := range c.args {
		switch a {
		case "--api-addr":
			c.args[i+1] = fab.Gateway.String() + ":" + strconv.Itoa(harness.FreePort(t))
		case "--heartbeat":
			c.args[i+1] = "5s"
		case "--router":
			router = fab.Gateway.String() + ":" + strconv.Itoa(harness.FreePort(t))
			c.args[i+1] = router
		}
	}
	c.args = append(c.args, "--nats-host", fab.Gateway.String())
	c.hostHB, c.hostRouters = "5s", true
	c.start()
	c.cli("tenants", "create", "acme")
	h1, h2 := c.joinHost(fab.Hosts[0], "ring1-m1", 11), c.joinHost(fab.Hosts[1], "ring1-m2", 12)
	c.cli("apps", "deploy", "acme/hello", c.sample, "--node", h1.id, "-q")
	c.cli("apps", "deploy", "acme/other", c.sample, "--node", h2.id, "-q")
	// Scaled first, then a new release (the env change): a recipe kept of release 2 holds both.
	c.cli("apps", "scale", "acme/hello", "web=2")
	c.cli("apps", "env", "acme/hello", "GREETING=moved-with-me")
	host := "hello.acme." + c.ep.AppsDomain
	if code, body := getVia(h1.ns, h1.router, host); code != 200 || !strings.Contains(body, "release 2") {
		t.Fatalf("acme/hello on %s: %d %q", h1.id, code, body)
	}
	harness.Eventually(t, 20*time.Second, func() bool { return c.placementOf("acme", "hello").KeptRelease == 2 },
		"ring 0 keeps acme/hello's release 2 to re-place it with")
	// Every host's router answers for the app, sending the request to the host running it.
	routers := map[string]func() (int, string){
		h2.id:         func() (int, string) { return getVia(h2.ns, h2.router, host) },
		"ring1-local": func() (int, string) { return getVia("", router, host) },
	}
	for _, via := range []string{h2.id, "ring1-local"} {
		harness.Eventually(t, 20*time.Second, func() bool {
			code, body := routers[via]()
			return code == 200 && strings.Contains(body, "hello from hello release 2")
		}, "acme/hello, on %s, through %s's router", h1.id, via)
	}

	// Two instances, three hosts: ring 0 spreads them, one on a replica it places by a bid.
	replica := ""
	harness.Eventually(t, 60*time.Second, func() bool {
		hosts := c.instanceHosts("acme", "hello")
		for h := range hosts {
			if h != h1.id {
				replica = h
			}
		}
		return len(hosts) == 2 && hosts[h1.id] == 1 && replica != ""
	}, "acme/hello's two instances on two hosts")

	harness.Run(t, "ip", "-n", h1.ns, "link", "set", "eth0", "down")
	cut := time.Now()
	var p placement
	served, failed := 0, 0 // through the replica's router while the home is cut off
	harness.Eventually(t, 60*time.Second, func() bool {
		if code, _ := routers[replica](); code == 200 {
			served++
		} else {
			failed++
		}
		p = c.placementOf("acme", "hello")
		via, ok := routers[p.Node]
		if !ok {
			return false
		}
		code, body := via()
		return code == 200 && strings.Contains(body, "hello from hello")
	}, "acme/hello re-placed off %s and serving", h1.id)
	took := time.Since(cut)
	t.Logf("host %s cut off: acme/hello re-placed on %s and serving %v after the cut (5 s heartbeats; judged down after 6)", h1.id, p.Node, took.Round(time.Millisecond))
	t.Logf("meanwhile %s's router, which runs a share of it, answered %d requests for it, %d failed", replica, served, failed)
	if failed > 0 {
		t.Fatalf("acme/hello failed %d of %d requests through its replica's router while its home was cut off", failed, served+failed)
	}
	if took > 40*time.Second {
		t.Fatalf("re-placing took %v; want within 40 s", took)
	}
	if p.MovedFrom != "" && p.MovedFrom != h1.id || p.Node != replica {
		t.Fatalf("placement after the move: %+v; want it on its replica %s", p, replica)
	}
	for via, get := range routers { // the other host's router too
		harness.Eventually(t, 20*time.Second, func() bool {
			code, body := get()
			return code == 200 && strings.Contains(body, "hello from hello")
		}, "acme/hello, moved to %s, through %s's router", p.Node, via)
	}
	if out := c.cli("placements"); !regexp.MustCompile(`(?m)^app\s+acme/hello\s+` + p.Node + `\s.*release [0-9]`).MatchString(out) {
		t.Fatalf("enjin placements after the move:\n%s", out)
	}
	env := c.cli("apps", "env", "acme/hello", "--reveal")
	if !strings.Contains(env, "moved-with-me") {
		t.Fatalf("the moved app's env:\n%s", env)
	}
	harness.Eventually(t, 30*time.Second, func() bool {
		n := 0
		for _, k := range c.instanceHosts("acme", "hello") {
			n += k
		}
		return n == 2
	}, "the moved app's two instances healthy: %s", c.cli("apps", "ps", "acme/hello"))

	// The host comes back: up again, and its copy goes — the app runs only where it was
	// placed, is listed once, and the old host's router sends its requests there.
	harness.Run(t, "ip", "-n", h1.ns, "link", "set", "eth0", "up")
	back := time.Now()
	harness.Eventually(t, 60*time.Second, func() bool {
		out, err := c.apiGet("/v1/nodes/" + h1.id)
		return err == nil && strings.Contains(string(out), `"state":"up"`)
	}, "%s up again", h1.id)
	ids := map[string]bool{}
	harness.Eventually(t, 60*time.Second, func() bool {
		ls := c.cli("apps", "ls", "acme") // an app on several hosts is listed once, with each
		return strings.Count(ls, "acme/hello ") == 1 && !strings.Contains(ls, h1.id)
	}, "%s's copy of acme/hello destroyed", h1.id)
	t.Logf("host %s back: its copy destroyed %v after its link came up", h1.id, time.Since(back).Round(time.Millisecond))
	// Its HOME, with whatever it wrote while cut off, is kept aside on the old host (once the
	// retirement that took the app off the host's list is over).
	var kept []string
	harness.Eventually(t, 20*time.Second, func() bool {
		kept, _ = filepath.Glob(filepath.Join(c.dir, h1.id, "apps", "retired", "acme", "hello-*.img"))
		return len(kept) == 1
	}, "the old copy's home kept on %s: %v", h1.id, kept)
	for _, f := range strings.Fields(c.cli("apps", "ps", "acme/hello")) {
		if len(f) == 36 && strings.Count(f, "-") == 4 {
			ids[f] = true
		}
	}
	harness.Eventually(t, 20*time.Second, func() bool {
		code, body := getVia(h1.ns, h1.router, host)
		_, id, _ := strings.Cut(strings.TrimSpace(body), " instance ")
		return code == 200 && ids[id]
	}, "%s's router sending acme/hello to its instances on %s (%v)", h1.id, p.Node, ids)
	if out, err := exec.Command(harness.Binary(t), "verify", "--state-dir", c.state).CombinedOutput(); err != nil ||
		!regexp.MustCompile(`bids of [3-9] placements: 0 failed`).Match(out) {
		t.Fatalf("enjin verify: %v\n%s", err, out)
	}

	// Now the replica's host is cut off: the replica is dropped and the app's instances run
	// elsewhere again (at home, or on a new replica), while the home's router answers without
	// fail.
	rep := ""
	harness.Eventually(t, 60*time.Second, func() bool {
		hosts := c.instanceHosts("acme", "hello")
		rep = ""
		for h := range hosts {
			if h != string(p.Node) {
				rep = h
			}
		}
		return len(hosts) == 2 && rep != ""
	}, "acme/hello spread over its home %s and a replica again", p.Node)
	ns, ok := map[string]string{h1.id: h1.ns, h2.id: h2.ns}[rep]
	if !ok {
		t.Fatalf("acme/hello's replica is on %s, not on a host in a namespace of the test's", rep)
	}
	harness.Run(t, "ip", "-n", ns, "link", "set", "eth0", "down")
	cut = time.Now()
	served, failed = 0, 0
	stop, probed := make(chan struct{}), make(chan struct{})
	go func() { // asking the home's router all along (reading where instances run is slower)
		defer close(probed)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if code, _ := routers[string(p.Node)](); code == 200 {
				served++
			} else {
				failed++
			}
		}
	}()
	harness.Eventually(t, 60*time.Second, func() bool {
		hosts, n := c.instanceHosts("acme", "hello"), 0
		for _, k := range hosts {
			n += k
		}
		return n == 2 && hosts[rep] == 0
	}, "acme/hello's instance on %s, cut off, running elsewhere", rep)
	close(stop)
	<-probed
	t.Logf("replica %s cut off: its instance ran elsewhere %v after the cut; the home's router answered %d requests meanwhile, %d failed",
		rep, time.Since(cut).Round(time.Millisecond), served, failed)
	if failed > 0 {
		t.Fatalf("acme/hello failed %d of %d requests through its home's router while its replica was cut off", failed, served+failed)
	}
}

// instanceHosts counts tenant's app's healthy instances by the host each runs on (an app
// running on one host: "").
func (c *cloud) instanceHosts(tenant, app string) map[string]int {
	b, err := c.apiGet("/v1/tenants/" + tenant + "/apps/" + app + "/instances")
	if err != nil {
		return nil
	}
	var l struct {
		Instances []struct{ State, Host string }
	}
	json.Unmarshal(b, &l)
	out := map[string]int{}
	for _, in := range l.Instances {
		if in.State == "healthy" {
			out[in.Host]++
		}
	}
	return out
}
