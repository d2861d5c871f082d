package test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"enjin/test/harness"
)

// TestHostsOnNetworks: three ring 1 hosts carry one tenant network over VXLAN — the node
// `enjin up` runs, and two in network namespaces of their own, joined to ring 0 with
// one-time tokens (the external strategy) across an underlay bridge. App instances on each
// host and a VM reach each other; the same block in another tenant's network, on the same
// hosts, is another segment; nothing of the host is reachable from the instances there; a
// restarted ring 0 finds the joined hosts' apps again.
func TestHostsOnNetworks(t *testing.T) {
	harness.LibvirtdShared(t)
	fab := harness.NewFabric(t, 3) // two hosts and, third, the "outside" beyond a NAT gateway
	c := newCloud(t)
	// Ring 0 listens on the fabric, where the other hosts reach it; the node it runs here
	// carries tenant networks from the address it reaches the bus at: the fabric's too.
	for i, a := range c.args {
		if a == "--api-addr" {
			c.args[i+1] = fab.Gateway.String() + ":" + strconv.Itoa(harness.FreePort(t))
		}
	}
	c.args = append(c.args, "--nats-host", fab.Gateway.String())
	c.start()
	img := guestImage(t)
	c.cli("images", "upload", "--kernel", filepath.Join(img, "vmlinuz"), "--initrd", filepath.Join(img, "initrd.img"), "--name", "guest", "-q")
	c.cli("tenants", "create", "acme")
	c.cli("tenants", "create", "beta")
	t.Cleanup(func() { c.destroyAllVMs("acme") })
	c.cli("networks", "create", "acme/lan", "--cidr4", "100.78.0.0/24")
	c.cli("networks", "create", "beta/lan", "--cidr4", "100.78.0.0/24")
	c.cli("rulesets", "create", "acme/web", "--rule", "in tcp 8080 from net:lan accept", "--rule", "in tcp 80 from net:lan accept")
	c.cli("rulesets", "create", "beta/web", "--rule", "in tcp 8080 accept")

	h1, h2 := c.joinHost(fab.Hosts[0], "ring1-h1", 1), c.joinHost(fab.Hosts[1], "ring1-h2", 2)
	onNet := `{"health":"/healthz","networks":[{"name":"lan","rulesets":["web"]}]}`
	c.deployProbe("acme/a", onNet, "--node", h1.id)
	c.deployProbe("beta/z", onNet, "--node", h1.id)
	c.deployProbe("acme/b", onNet, "--node", h2.id)
	c.deployProbe("beta/y", onNet, "--node", h2.id)
	c.deployProbe("acme/c", onNet) // ring 0 places it: on acme's host running none of its apps yet, here
	// The VM goes where acme's VMs can run: the node here, though acme is hosted on the other
	// two too (they host no VMs).
	vm := c.createVM("acme/v", "--network", "lan", "--ruleset", "web")
	if vm.Node != "ring1-local" || len(vm.Addresses) != 2 {
		t.Fatalf("the VM: %+v", vm)
	}
	// The app list gathers every host's apps, each with its node.
	ls := c.cli("apps", "ls", "acme")
	for app, node := range map[string]string{"acme/a": h1.id, "acme/b": h2.id, "acme/c": "ring1-local"} {
		if !regexp.MustCompile(`(?m)^` + app + ` .* ` + node + `\s*$`).MatchString(ls) {
			t.Fatalf("apps ls acme: no %s on %s:\n%s", app, node, ls)
		}
	}

	a, b, cc := c.netAddrs("acme/a", "lan"), c.netAddrs("acme/b", "lan"), c.netAddrs("acme/c", "lan")
	z, y := c.netAddrs("beta/z", "lan"), c.netAddrs("beta/y", "lan")
	if len(a) != 1 || len(b) != 1 || len(cc) != 1 || len(z) != 1 || len(y) != 1 || a[0] != z[0] {
		t.Fatalf("addresses: acme a %v b %v c %v, beta z %v y %v: want one each, a's and z's alike", a, b, cc, z, y)
	}
	t.Logf("acme: a %s (h1), b %s (h2), c %s and VM %s (here); beta: z %s (h1), y %s (h2)", a[0], b[0], cc[0], vm.Addresses[1], z[0], y[0])

	// Across every pair of hosts, over VXLAN, both ways.
	whoami := func(addr string) string { return "http://" + addr + ":8080/whoami" }
	h1.waitFetch(t, "acme/a", whoami(b[0]), "acme/b release 1")
	h2.waitFetch(t, "acme/b", whoami(a[0]), "acme/a release 1")
	c.waitFetch("acme/c", whoami(a[0]), "acme/a release 1")
	h1.waitFetch(t, "acme/a", whoami(cc[0]), "acme/c release 1")
	h2.waitFetch(t, "acme/b", whoami(cc[0]), "acme/c release 1")
	// The VM, once its guest serves (asked from the node it runs on first: it boots meanwhile).
	if !harness.Poll(120*time.Second, func() bool {
		code, body := c.fetch("acme/c", "http://"+vm.Addresses[1]+"/")
		return code == 200 && body == "v\n"
	}) {
		t.Fatalf("acme/c never reached the VM at %s:\n%s", vm.Addresses[1], c.cli("vms", "console", "acme/v"))
	}
	h1.waitFetch(t, "acme/a", "http://"+vm.Addresses[1]+"/", "v\n")
	h2.waitFetch(t, "acme/b", "http://"+vm.Addresses[1]+"/", "v\n")
	// The same address on beta's network is beta's z, from any host; on acme's, acme's a.
	h2.waitFetch(t, "beta/y", whoami(z[0]), "beta/z release 1")
	h1.waitFetch(t, "beta/z", whoami(y[0]), "beta/y release 1")
	for i := 0; i < 20; i++ {
		if code, body := h2.fetch("acme/b", whoami(a[0])); code != 200 || !strings.Contains(body, "acme/a") {
			t.Fatalf("acme/b asking %s on acme's network: %d %q", a[0], code, body)
		}
		if code, body := h2.fetch("beta/y", whoami(a[0])); code != 200 || !strings.Contains(body, "beta/z") {
			t.Fatalf("beta/y asking %s on beta's network: %d %q", a[0], code, body)
		}
	}
	// acme's c and VM have no twins on beta's network: nothing answers there.
	for _, addr := range []string{cc[0], vm.Addresses[1]} {
		if code, body := h1.fetch("beta/z", whoami(addr)); code != http.StatusBadGateway {
			t.Fatalf("beta/z reached %s on acme's network: %d %q", addr, code, body)
		}
	}
	// An instance on a joined host reaches neither ring 0 across the underlay nor its host.
	for _, u := range []string{c.ep.API + "/healthz", "http://" + fab.Hosts[0].Addr.String() + ":7071/"} {
		if code, body := h1.fetch("acme/a", u); code != http.StatusBadGateway {
			t.Fatalf("an instance on h1 reached %s: %d %q", u, code, body)
		}
	}

	// Egress through ring 1's NAT gateway: on a network with NAT, an instance on a joined
	// host reaches the outside (a namespace on the fabric) exactly as its rule sets' "out"
	// rules allow, seen from there as its host; whatever they allow, never ring 0 nor a host.
	outside := fab.Hosts[2]
	for _, p := range []string{":8000", ":8001"} {
		serveOutside(t, outside.Netns, outside.Addr.String()+p)
	}
	c.cli("networks", "create", "acme/wan", "--cidr4", "100.79.0.0/24", "--nat")
	c.cli("rulesets", "create", "acme/egress", "--rule", "out tcp 8000 to "+outside.Addr.String()+"/32 accept")
	c.cli("rulesets", "create", "acme/wide", "--rule", "out any accept")
	c.deployProbe("acme/e", `{"health":"/healthz","networks":[{"name":"wan","rulesets":["egress"]}]}`, "--node", h2.id)
	c.deployProbe("acme/f", `{"health":"/healthz","networks":[{"name":"wan","rulesets":["wide"]}]}`, "--node", h2.id)
	seen := "outside sees " + fab.Hosts[1].Addr.String()
	h2.waitFetch(t, "acme/e", "http://"+outside.Addr.String()+":8000/", seen)
	h2.waitFetch(t, "acme/f", "http://"+outside.Addr.String()+":8001/", seen)
	for _, x := range []struct{ ref, u string }{
		{"acme/e", "http://" + outside.Addr.String() + ":8001/"},      // no rule of e's lets it out there
		{"acme/f", c.ep.API + "/healthz"},                             // ring 0
		{"acme/f", "http://" + fab.Hosts[0].Addr.String() + ":7071/"}, // another host
		{"acme/f", "http://" + fab.Hosts[1].Addr.String() + ":7071/"}, // its own host
		{"acme/f", "http://100.79.0.1:7071/"},                         // its own host, at the gateway
		{"acme/f", whoami(b[0])},                                      // another network of the tenant's
	} {
		if code, body := h2.fetch(x.ref, x.u); code != http.StatusBadGateway {
			t.Fatalf("WALL BROKEN: %s on a NAT network reached %s: %d %q", x.ref, x.u, code, body)
		}
	}
	t.Logf("egress: acme/e and acme/f on h2 reach the outside through the NAT gateway as %s, each only as its rules allow", fab.Hosts[1].Addr)

	// Destroying the apps on a host takes their ports and segments there away.
	c.cli("apps", "destroy", "acme/a")
	c.cli("apps", "destroy", "beta/z")
	harness.Eventually(t, 10*time.Second, func() bool {
		out, _ := exec.Command("ip", "-n", h1.ns, "-o", "link", "show", "type", "vxlan").Output()
		return len(bytes.TrimSpace(out)) == 0
	}, "h1's segments gone with its last ports")
	c.waitFetch("acme/c", whoami(b[0]), "acme/b release 1") // the others' stay

	// Ring 0 killed and run again finds a joined host's app API anew, from the host's signed
	// heartbeats: the app there answers through the API, and still talks across hosts.
	c.proc.Kill()
	c.start()
	var out []byte
	if !harness.Poll(60*time.Second, func() bool {
		var err error
		out, err = exec.Command(harness.Binary(t), "apps", "ps", "acme/b", "--state-dir", c.state).CombinedOutput()
		return err == nil && strings.Contains(string(out), "healthy")
	}) {
		t.Fatalf("apps ps acme/b after ring 0 ran again:\n%s", out)
	}
	h2.waitFetch(t, "acme/b", whoami(cc[0]), "acme/c release 1")
}

// serveOutside answers HTTP at addr in namespace ns with who it sees asking.
func serveOutside(t *testing.T, ns, addr string) {
	var ln net.Listener
	var err error
	harness.InNetns(t, ns, func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		io.WriteString(w, "outside sees "+host)
	})}
	go srv.Serve(ln) // ends when the test closes it
	t.Cleanup(func() { srv.Close() })
}

// nsHost is a ring 1 node in a network namespace of its own, joined with a one-time token.
type nsHost struct {
	id, ns string
	proc   *harness.Proc
	router string // its router, inside ns
	domain string
}

// joinHost registers ring 1 node id, and runs it in host's namespace, joining with a one-time
// token from a file and hosting apps (no VMs: libvirtd is in another namespace); n sets its
// bridge, its instances' block and its app uids apart from the other hosts'.
func (c *cloud) joinHost(host harness.FabricHost, id string, n int) *nsHost {
	t := c.t
	t.Helper()
	if code, b := c.apiDo("POST", "/v1/nodes", map[string]any{"id": id, "ring": 1, "label": "netns",
		"supervision_strategy": "external", "observation_strategy": "self"}); code != 201 {
		t.Fatalf("register %s: %d %s", id, code, b)
	}
	code, b := c.apiDo("POST", "/v1/nodes/"+id+"/join-token", map[string]any{"ttl_seconds": 600})
	if code != 201 {
		t.Fatalf("join token for %s: %d %s", id, code, b)
	}
	dir := filepath.Join(c.dir, id)
	os.MkdirAll(dir, 0o700)
	tok := filepath.Join(dir, "join.json") // the API's answer, as curl -o saves it
	os.WriteFile(tok, b, 0o600)
	bridge := fmt.Sprintf("%sh%d", c.bridge, n)
	h := &nsHost{id: id, ns: host.Netns, router: "127.0.0.1:7080", domain: c.ep.AppsDomain}
	hb := cmp.Or(c.hostHB, "300ms")
	if c.hostRouters {
		h.router = host.Addr.String() + ":7080"
	}
	cmd := exec.Command("nsenter", "--net=/run/netns/"+host.Netns, harness.Binary(t), "ring1",
		"--join-file", tok, "--ring0", c.ep.API, "--state-dir", filepath.Join(dir, "state"),
		"--apps-dir", filepath.Join(dir, "apps"), "--apps-api", host.Addr.String()+":7071",
		"--bridge", bridge, "--prefix", fmt.Sprintf("100.96.%d.0/24", n), "--uid-range", fmt.Sprintf("%d:10000", 701_000_000+n*10_000),
		"--apps-domain", h.domain, "--router", h.router, "--no-vms", "--heartbeat", hb, "--log-level", "warn")
	h.proc = harness.Adopt(t, cmd)
	t.Cleanup(func() {
		h.proc.Stop(time.Minute)
		harness.RemoveNode(t, bridge)
	})
	harness.Eventually(t, 60*time.Second, func() bool {
		out, err := c.apiGet("/v1/nodes/" + id)
		return err == nil && strings.Contains(string(out), `"state":"up"`)
	}, "%s up (its output: %s)", id, h.proc.Out)
	return h
}

// apiDo calls ring 0's API as the admin with a JSON body, returning the status and answer.
func (c *cloud) apiDo(method, path string, in any) (int, []byte) {
	c.t.Helper()
	tok, err := os.ReadFile(c.ep.AdminTokenFile)
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, c.ep.API+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.ep.client(c.t).Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// fetch has app ref (the probe) on host h GET u from inside its instance, through h's router.
func (h *nsHost) fetch(ref, u string) (int, string) {
	tenant, app, _ := strings.Cut(ref, "/")
	cl := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Dial: harness.Dialer(h.ns)}}
	defer cl.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+h.router+"/fetch?url="+url.QueryEscape(u), nil)
	req.Host = app + "." + tenant + "." + h.domain
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFetch waits until app ref on h GETs u with 200 and want in the answer.
func (h *nsHost) waitFetch(t *testing.T, ref, u, want string) {
	t.Helper()
	var code int
	var body string
	if !harness.Poll(15*time.Second, func() bool { code, body = h.fetch(ref, u); return code == 200 && strings.Contains(body, want) }) {
		t.Fatalf("%s on %s GET %s: %d %q, want %q (%s's output: %s)", ref, h.id, u, code, body, want, h.id, h.proc.Out)
	}
}
