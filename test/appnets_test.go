package test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"enjin"
	"enjin/bus"
	"enjin/bus/broker"
	"enjin/keys"
	"enjin/services/apphost"
	"enjin/test/harness"
)

// TestAppsOnNetworks: apps join their tenant's networks from enjin.json, each instance with
// its own port (address, MAC) there; an instance takes in only what its rule sets allow, so
// apps of one tenant talk only where a rule set says; the same block in another tenant's
// network is another segment; a rule set change reaches running instances; ports and
// segments go when the apps do.
func TestAppsOnNetworks(t *testing.T) {
	c := newCloud(t)
	c.start()
	deploy := c.deployProbe
	bin := c.probeBin()
	c.cli("tenants", "create", "acme")
	c.cli("tenants", "create", "beta")
	c.cli("networks", "create", "acme/db", "--cidr4", "100.79.0.0/24", "--prefix6", "fd00:79::/64")
	c.cli("networks", "create", "beta/db", "--cidr4", "100.79.0.0/24")
	c.cli("rulesets", "create", "acme/open", "--rule", "in tcp 8080 from net:db accept")
	c.cli("rulesets", "create", "beta/open", "--rule", "in tcp 8080 accept")

	// A manifest naming a network the tenant does not have fails its deploy, with the reason.
	dir := filepath.Join(c.dir, "apps", "nonet")
	os.MkdirAll(dir, 0o755)
	os.Link(bin, filepath.Join(dir, "probe"))
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: ./probe serve\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "enjin.json"), []byte(`{"networks":["nope"]}`), 0o644)
	if out, err := exec.Command(harness.Binary(t), "apps", "deploy", "acme/nonet", dir, "--state-dir", c.state).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "nope") {
		t.Fatalf("deploy on a network the tenant lacks: %v\n%s", err, out)
	}

	deploy("acme/a", `{"health":"/healthz","networks":[{"name":"db","rulesets":["open"]}]}`)
	deploy("acme/b", `{"health":"/healthz","networks":["db"]}`)
	deploy("beta/z", `{"health":"/healthz","networks":[{"name":"db","rulesets":["open"]}]}`)
	a, b, z := c.netAddrs("acme/a", "db"), c.netAddrs("acme/b", "db"), c.netAddrs("beta/z", "db")
	if len(a) != 2 || len(b) != 2 || len(z) != 1 || !strings.HasPrefix(a[0], "100.79.0.") || !strings.HasPrefix(a[1], "fd00:79::") {
		t.Fatalf("addresses: a %v, b %v, z %v", a, b, z)
	}
	if a[0] != z[0] {
		t.Fatalf("the first port of each tenant's 100.79.0.0/24 should have the same address: %s, %s", a[0], z[0])
	}
	t.Logf("acme/a %v, acme/b %v, beta/z %v", a, b, z)

	// b reaches a, over IPv4 and IPv6: a's rule set lets its network in — and it is acme's a
	// that answers at that address, not beta's z.
	for _, u := range []string{"http://" + a[0] + ":8080/whoami", "http://[" + a[1] + "]:8080/whoami"} {
		c.waitFetch("acme/b", u, "acme/a release 1")
	}
	// a does not reach b: b names no rule set, so nothing gets in.
	if code, body := c.fetch("acme/a", "http://"+b[0]+":8080/whoami"); code != http.StatusBadGateway {
		t.Fatalf("acme/a reached acme/b, which has no rule set: %d %q", code, body)
	}
	// beta's z is on another segment: acme's b's address is nothing there.
	if code, body := c.fetch("beta/z", "http://"+b[0]+":8080/whoami"); code != http.StatusBadGateway {
		t.Fatalf("beta/z reached %s on acme's network: %d %q", b[0], code, body)
	}
	// The instance still reaches nothing beyond its networks: the node's API is not there.
	if code, body := c.fetch("acme/b", c.ep.API+"/v1/nodes"); code != http.StatusBadGateway {
		t.Fatalf("an instance reached the meta API: %d %q", code, body)
	}

	c.checkPortsService(t, a[0], b[0])

	// A rule set change reaches the running instance before the update answers.
	c.cli("rulesets", "update", "acme/open", "--rule", "in tcp 9999 from net:db accept")
	if code, body := c.fetch("acme/b", "http://"+a[0]+":8080/whoami"); code != http.StatusBadGateway {
		t.Fatalf("acme/b still reached acme/a after its rule set closed 8080: %d %q", code, body)
	}
	c.cli("rulesets", "update", "acme/open", "--rule", "in tcp 8080 from net:db accept")
	if code, body := c.fetch("acme/b", "http://"+a[0]+":8080/whoami"); code != 200 || !strings.Contains(body, "acme/a") {
		t.Fatalf("acme/b did not reach acme/a after its rule set opened 8080 again: %d %q", code, body)
	}

	// A rule naming a rule set as its remote lets in exactly the ports that enforce it: d
	// and e, not a; e, deployed after d, is let into d as soon as it is up (d's rules follow
	// who enforces the set).
	c.cli("rulesets", "create", "acme/peers", "--rule", "in tcp 8080 from rs:peers accept")
	deploy("acme/d", `{"health":"/healthz","networks":[{"name":"db","rulesets":["peers"]}]}`)
	deploy("acme/e", `{"health":"/healthz","networks":[{"name":"db","rulesets":["peers"]}]}`)
	d, e := c.netAddrs("acme/d", "db"), c.netAddrs("acme/e", "db")
	c.waitFetch("acme/e", "http://"+d[0]+":8080/whoami", "acme/d")
	c.waitFetch("acme/e", "http://["+d[1]+"]:8080/whoami", "acme/d")
	c.waitFetch("acme/d", "http://"+e[0]+":8080/whoami", "acme/e")
	if code, body := c.fetch("acme/a", "http://"+d[0]+":8080/whoami"); code != http.StatusBadGateway {
		t.Fatalf("acme/a, which does not enforce peers, reached acme/d: %d %q", code, body)
	}
	if out, err := exec.Command(harness.Binary(t), "rulesets", "delete", "acme/peers", "--state-dir", c.state).CombinedOutput(); err == nil {
		t.Fatalf("a rule set ports enforce was deleted:\n%s", out)
	}
	c.cli("apps", "destroy", "acme/d")
	c.cli("apps", "destroy", "acme/e")

	// Egress: b's new release sends only to a, on 8080 — not to c, which takes in all of the
	// network — yet still asks its neighbours where a is (IPv6 included).
	c.cli("rulesets", "create", "acme/to-a", "--rule", "out tcp 8080 to "+a[0]+"/32 accept",
		"--rule", "out tcp 8080 to "+a[1]+"/128 accept", "--rule", "out any drop")
	deploy("acme/c", `{"health":"/healthz","networks":[{"name":"db","rulesets":["open"]}]}`)
	cAddr := c.netAddrs("acme/c", "db")
	c.waitFetch("acme/b", "http://"+cAddr[0]+":8080/whoami", "acme/c")
	deploy("acme/b", `{"health":"/healthz","networks":[{"name":"db","rulesets":["to-a"]}]}`)
	for _, u := range []string{"http://" + a[0] + ":8080/whoami", "http://[" + a[1] + "]:8080/whoami"} {
		c.waitFetch("acme/b", u, "acme/a")
	}
	for _, u := range []string{"http://" + cAddr[0] + ":8080/whoami", "http://[" + cAddr[1] + "]:8080/whoami"} {
		if code, body := c.fetch("acme/b", u); code != http.StatusBadGateway {
			t.Fatalf("acme/b's egress rules allow only acme/a, yet it reached %s: %d %q", u, code, body)
		}
	}
	// c has the address d had: a, which knew d's MAC there, learns c's at once (announced).
	if cAddr[0] != d[0] {
		t.Fatalf("acme/c at %s, not at %s, which acme/d had: the lowest free address", cAddr[0], d[0])
	}
	c.waitFetch("acme/a", "http://"+cAddr[0]+":8080/whoami", "acme/c") // c itself is open to the network
	c.cli("apps", "destroy", "acme/c")

	// A ring 1 node killed and started again starts its instances afresh, on fresh ports:
	// ring 0 releases the old ones first (or the network could not be deleted below), and
	// b reaches a again, over the guard and rule sets the new node set up.
	old := c.ring1PID()
	syscall.Kill(old, syscall.SIGKILL)
	harness.Eventually(t, 30*time.Second, func() bool { p := c.ring1PID(); return p != 0 && p != old && harness.Alive(p) },
		"ring 1 started again")
	c.waitServing([]string{"acme/a", "acme/b", "beta/z"})
	a = c.netAddrs("acme/a", "db")
	c.waitFetch("acme/b", "http://"+a[0]+":8080/whoami", "acme/a release 1")
	if code, body := c.fetch("acme/a", "http://"+c.netAddrs("acme/b", "db")[0]+":8080/whoami"); code != http.StatusBadGateway {
		t.Fatalf("after a restart of ring 1, acme/a reached acme/b, which has no rule set: %d %q", code, body)
	}

	// Instances each have a port of their own; scaling down gives the ports back.
	c.cli("apps", "scale", "acme/a", "web=3")
	var ps struct{ Instances []apphost.InstanceInfo }
	json.Unmarshal([]byte(c.cli("apps", "ps", "acme/a", "-o", "json")), &ps)
	seen := map[string]bool{}
	for _, in := range ps.Instances {
		if len(in.Networks) != 1 || seen[in.Networks[0].Addresses[0]] || seen[in.Networks[0].MAC] {
			t.Fatalf("instances' ports are not their own: %+v", ps.Instances)
		}
		seen[in.Networks[0].Addresses[0]], seen[in.Networks[0].MAC] = true, true
	}
	if out := c.cli("apps", "ps", "acme/a"); !strings.Contains(out, "db=100.79.0.") {
		t.Fatalf("ps shows no network address:\n%s", out)
	}
	c.cli("apps", "scale", "acme/a", "web=1")

	// The network cannot go while apps are on it; once they are gone, it can, and its
	// segment is gone from the host.
	if out, err := exec.Command(harness.Binary(t), "networks", "delete", "acme/db", "--state-dir", c.state).CombinedOutput(); err == nil {
		t.Fatalf("a network with apps on it was deleted:\n%s", out)
	}
	var vni struct {
		VNI int `json:"vni"`
	}
	json.Unmarshal([]byte(c.cli("networks", "show", "acme/db", "-o", "json")), &vni)
	c.cli("apps", "destroy", "acme/a")
	c.cli("apps", "destroy", "acme/b")
	c.cli("networks", "delete", "acme/db")
	if out, _ := exec.Command("ip", "-o", "link", "show").Output(); vni.VNI == 0 || strings.Contains(string(out), "enjn"+strconv.Itoa(vni.VNI)+":") ||
		strings.Contains(string(out), "@enjn"+strconv.Itoa(vni.VNI)) {
		t.Fatalf("acme's segment (vni %d) is still on the host after its apps went:\n%s", vni.VNI, out)
	}
	// beta's app still works, on its own segment.
	if code, body := c.fetch("beta/z", "http://"+z[0]+":8080/whoami"); code != 200 || !strings.Contains(body, "beta/z") {
		t.Fatalf("beta/z lost its own network: %d %q", code, body)
	}
}

// probeBin builds test/probe once for the cloud and says where.
func (c *cloud) probeBin() string {
	c.t.Helper()
	bin := filepath.Join(c.dir, "probe-bin")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if out, err := exec.Command("go", "build", "-o", bin, "./probe").CombinedOutput(); err != nil {
		c.t.Fatalf("build test/probe: %v\n%s", err, out)
	}
	return bin
}

// deployProbe deploys test/probe as app ref (TENANT/APP) with enjin.json manifest: its next
// release, if it has one; extra are more flags of apps deploy.
func (c *cloud) deployProbe(ref, manifest string, extra ...string) {
	c.t.Helper()
	dir := filepath.Join(c.dir, "apps", strings.ReplaceAll(ref, "/", "-"))
	os.MkdirAll(dir, 0o755)
	os.Remove(filepath.Join(dir, "probe"))
	if err := os.Link(c.probeBin(), filepath.Join(dir, "probe")); err != nil {
		c.t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: ./probe serve\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "enjin.json"), []byte(manifest), 0o644)
	c.cli(append([]string{"apps", "deploy", ref, dir, "-q"}, extra...)...)
}

// netAddrs are the addresses (without prefix length) of ref's first instance on network.
func (c *cloud) netAddrs(ref, network string) []string {
	c.t.Helper()
	var ps struct{ Instances []apphost.InstanceInfo }
	if err := json.Unmarshal([]byte(c.cli("apps", "ps", ref, "-o", "json")), &ps); err != nil || len(ps.Instances) == 0 {
		c.t.Fatalf("ps %s: %v", ref, err)
	}
	var out []string
	for _, n := range ps.Instances[0].Networks {
		if n.Network == network {
			for _, a := range n.Addresses {
				out = append(out, strings.Split(a, "/")[0])
			}
		}
	}
	return out
}

// fetch has app ref (the probe) GET u from inside its instance, through the router.
func (c *cloud) fetch(ref, u string) (int, string) {
	return c.getPath(ref, "/fetch?url="+url.QueryEscape(u))
}

// waitFetch waits until app ref's GET of u answers 200 with want in its body.
func (c *cloud) waitFetch(ref, u, want string) {
	c.t.Helper()
	var code int
	var body string
	if !harness.Poll(10*time.Second, func() bool { code, body = c.fetch(ref, u); return code == 200 && strings.Contains(body, want) }) {
		c.t.Fatalf("%s GET %s: %d %q, want %q", ref, u, code, body, want)
	}
}

// checkPortsService tries ring 0's ports service as a RING1 user that hosts no tenant: it
// gets no port, cannot release acme's, and its sweep leaves acme's instances' ports alone.
func (c *cloud) checkPortsService(t *testing.T, aAddr, bAddr string) {
	chain, err := keys.Load(c.state)
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := broker.IssuerFor(chain, keys.RING1)
	creds, err := iss.Mint(keys.UserRequest{Name: "ring1-other", Perms: bus.Ring1NodePerms("ring1-other")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := bus.Connect(c.ep.NATS, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ask := func(req bus.PortsRequest) error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := bus.Request[bus.PortsRequest, bus.PortsReply](ctx, nc, bus.R1Ring0(bus.ServicePorts), req)
		return err
	}
	var ps struct{ Instances []apphost.InstanceInfo }
	json.Unmarshal([]byte(c.cli("apps", "ps", "acme/a", "-o", "json")), &ps)
	victim := ps.Instances[0].ID
	for _, req := range []bus.PortsRequest{
		{Tenant: "acme", Instance: "5b0c7f4e-3a52-4c1e-9d7e-0a1b2c3d4e5f", Networks: []enjin.AppNetwork{{Name: "db"}}},
		{Tenant: "acme", Instance: victim, Networks: []enjin.AppNetwork{{Name: "db"}}},
		{Tenant: "acme", Instance: victim}, // releasing another node's instance's ports
	} {
		if err := ask(req); err == nil || !strings.Contains(err.Error(), "does not host") {
			t.Fatalf("ports %+v for a node hosting nothing: %v", req, err)
		}
	}
	if err := ask(bus.PortsRequest{Sweep: true}); err != nil {
		t.Fatalf("sweep of a node with nothing: %v", err)
	}
	if code, body := c.fetch("acme/b", "http://"+aAddr+":8080/whoami"); code != 200 || !strings.Contains(body, "acme/a") {
		t.Fatalf("another node's sweep took acme/a's port: %d %q", code, body)
	}
	t.Logf("ports service: 3 requests of a node hosting nothing refused; its sweep released nothing of acme's")
}
