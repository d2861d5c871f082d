package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"enjin/test/harness"
)

// The plumbing of the hostile-tenant tests: an `enjin up` of their own, the CLI as the admin
// or as a tenant, each app's own shell (the probe app's POST /sh, reached through the router
// by Host), batches of probes run inside a tenant's sandbox, and the check made after every
// batch that ring 1 and the victim are unharmed.

// hostileCloud is one `enjin up` the hostile tests attack.
type hostileCloud struct {
	bin    string // the enjin binary
	dir    string // the test's directory; state is below it
	state  string
	p      *harness.Proc
	ep     endpoints
	bridge string
	prefix netip.Prefix
	ring1  int // ring 1's pid when the cloud came up; it must never change
	tally  *tally

	mu     sync.Mutex
	guards map[string]string // tenant/app → the prefix of what its GET /whoami must answer
}

// startHostile runs `enjin up` with ports, bridge and prefix of its own (net is the second
// octet of its 100.64.0.0/10 prefixes) and extra flags. Its ring 1 node's cgroups are named
// for the node and the bridge, so it shares none with another cloud on this host.
func startHostile(t *testing.T, net int, extra ...string) *hostileCloud {
	t.Helper()
	dir := tempDir(t, "enjin-hostile-")
	state := filepath.Join(dir, "state")
	natsPort := harness.FreePort(t)
	n := natsPort % 200
	c := &hostileCloud{bin: harness.Binary(t), dir: dir, state: state, bridge: fmt.Sprintf("enjh%d", n),
		prefix: netip.MustParsePrefix(fmt.Sprintf("100.%d.%d.0/24", net, n)), tally: newTally(), guards: map[string]string{}}
	args := append([]string{"up", "--state-dir", state, "--nats-port", strconv.Itoa(natsPort),
		"--api-addr", "127.0.0.1:0", "--heartbeat", "300ms", "--log-level", "warn",
		"--router", "127.0.0.1:" + strconv.Itoa(harness.FreePort(t)), "--router-tls", "127.0.0.1:" + strconv.Itoa(harness.FreePort(t)), "--dns", "127.0.0.1:" + strconv.Itoa(harness.FreePort(t)),
		"--bridge", c.bridge, "--prefix", c.prefix.String()}, extra...)
	c.p = harness.Adopt(t, exec.Command(c.bin, args...))
	t.Cleanup(func() { harness.RemoveNode(t, c.bridge) }) // ring 1 leaves its firewall table
	harness.Eventually(t, 90*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(state, "endpoints.json"))
		return err == nil && json.Unmarshal(b, &c.ep) == nil
	}, "enjin up ready (output so far: %s)", c.p.Out)
	c.ring1 = c.ring1Pid()
	if c.ring1 == 0 {
		t.Fatal("no ring 1 pid file")
	}
	return c
}

// ring1Pid reads ring 1's pid file.
func (c *hostileCloud) ring1Pid() int {
	b, err := os.ReadFile(filepath.Join(c.state, "nodes", "ring1-local", "ring1.pid"))
	if err != nil {
		return 0
	}
	var rec struct{ Pid int }
	json.Unmarshal(b, &rec)
	return rec.Pid
}

// appsDir is ring 1's app host directory on the host.
func (c *hostileCloud) appsDir(elem ...string) string {
	return filepath.Join(append([]string{c.state, "nodes", "ring1-local", "apps"}, elem...)...)
}

// cli runs the enjin CLI as the admin.
func (c *hostileCloud) cli(args ...string) (string, error) {
	out, err := exec.Command(c.bin, append(args, "--state-dir", c.state)...).CombinedOutput()
	return string(out), err
}

// must runs the enjin CLI as the admin and fails the test if it fails.
func (c *hostileCloud) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.cli(args...)
	if err != nil {
		t.Fatalf("enjin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// as runs the enjin CLI with a tenant's token and nothing else.
func (c *hostileCloud) as(token string, args ...string) (string, error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "ENJIN_API="+c.ep.API, "ENJIN_TOKEN="+token)
	cmd.Dir = c.dir // no ./var/enjin here to fall back on
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// call asks ring 0's API with the Authorization header auth ("" for none) and returns the
// status and body; path is sent as written (escapes, dots and double slashes included).
func (c *hostileCloud) call(auth, method, path string, body io.Reader, hdr ...string) (int, string) {
	code, b, _ := c.callHeader(auth, method, path, body, hdr...)
	return code, b
}

// callHeader is call that also returns the answer's header.
func (c *hostileCloud) callHeader(auth, method, path string, body io.Reader, hdr ...string) (int, string, http.Header) {
	req, err := http.NewRequest(method, c.ep.API+path, body)
	if err != nil {
		return 0, err.Error(), nil
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), resp.Header
}

// instanceGroups counts the instance cgroups ring 1 has made, as the host sees them.
func (c *hostileCloud) instanceGroups() int {
	n := 0
	es, _ := os.ReadDir("/sys/fs/cgroup/pids/enjin-ring1-local-" + c.bridge) // one hierarchy tells
	for _, e := range es {
		if e.IsDir() {
			n++
		}
	}
	return n
}

// host is an app's name for the router.
func (c *hostileCloud) host(tenant, app string) string {
	return app + "." + tenant + "." + c.ep.AppsDomain
}

var noRedirect = &http.Client{Timeout: 30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// get asks an app through the router.
func (c *hostileCloud) get(tenant, app, path string) (int, string) {
	req, _ := http.NewRequest("GET", "http://"+c.ep.Router+path, nil)
	req.Host = c.host(tenant, app)
	resp, err := noRedirect.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sh runs script in the app's own shell (its /sh, at most 10 s) and returns the output and
// exit code; an error if the shell did not answer.
func (c *hostileCloud) sh(tenant, app, script string) (string, int, error) {
	req, _ := http.NewRequest("POST", "http://"+c.ep.Router+"/sh", strings.NewReader(script))
	req.Host = c.host(tenant, app)
	resp, err := noRedirect.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), 0, fmt.Errorf("POST /sh to %s: %s %s", req.Host, resp.Status, bytes.TrimSpace(b))
	}
	code, _ := strconv.Atoi(resp.Header.Get("X-Exit-Code"))
	return string(b), code, nil
}

// mustSh is sh that fails the test unless the script exits 0.
func (c *hostileCloud) mustSh(t *testing.T, tenant, app, script string) string {
	t.Helper()
	out, code, err := c.sh(tenant, app, script)
	if err != nil || code != 0 {
		t.Fatalf("%s/%s$ %s: exit %d, %v\n%s", tenant, app, script, code, err, out)
	}
	return out
}

// result is what one probe in the sandbox reported.
type result struct {
	Probe  string `json:"probe"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// probes runs the probes (NAME=ARG each) in the app's sandbox with `probe par` and returns
// their results in order.
func (c *hostileCloud) probes(tenant, app string, attempts []string) ([]result, error) {
	var script strings.Builder
	script.WriteString("exec /app/probe par")
	for _, a := range attempts {
		script.WriteString(" '" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	out, _, err := c.sh(tenant, app, script.String())
	if err != nil {
		return nil, err
	}
	var rs []result
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var r result
		if err := dec.Decode(&r); err != nil {
			return rs, fmt.Errorf("probe output: %v\n%s", err, out)
		}
		rs = append(rs, r)
	}
	if len(rs) != len(attempts) {
		return rs, fmt.Errorf("%d results for %d probes:\n%s", len(rs), len(attempts), out)
	}
	return rs, nil
}

// attack runs attempts from the app's sandbox in batches of at most 50, counts them under
// category, reports every wall that did not hold, and checks after each batch that ring 1
// and the guarded apps are unharmed.
func (c *hostileCloud) attack(t *testing.T, category, tenant, app string, attempts []string) {
	t.Helper()
	for len(attempts) > 0 {
		n := min(len(attempts), 50)
		batch := attempts[:n]
		attempts = attempts[n:]
		rs, err := c.probes(tenant, app, batch)
		if err != nil {
			t.Fatalf("%s from %s/%s: %v", category, tenant, app, err)
		}
		for i, r := range rs {
			c.tally.add(category, r.OK)
			if !r.OK {
				t.Errorf("WALL BROKEN (%s): %s/%s ran %s: %s", category, tenant, app, batch[i], r.Detail)
			}
		}
		c.checkUnharmed(t)
	}
}

// guard makes checkUnharmed require that GET /whoami of tenant/app answers 200 starting
// with want (e.g. "acme/probe release 1"); "" stops guarding it.
func (c *hostileCloud) guard(tenant, app, want string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if want == "" {
		delete(c.guards, tenant+"/"+app)
		return
	}
	c.guards[tenant+"/"+app] = want
}

// checkUnharmed fails the test unless ring 1 runs with the pid it started with and every
// guarded app answers through the router as itself.
func (c *hostileCloud) checkUnharmed(t *testing.T) {
	t.Helper()
	if pid := c.ring1Pid(); pid != c.ring1 || !harness.Alive(pid) {
		t.Fatalf("RING 1 HARMED: pid file says %d (alive: %v), it started as %d (alive: %v)",
			pid, harness.Alive(pid), c.ring1, harness.Alive(c.ring1))
	}
	c.mu.Lock()
	guards := make(map[string]string, len(c.guards))
	for k, v := range c.guards {
		guards[k] = v
	}
	c.mu.Unlock()
	for ta, want := range guards {
		tenant, app, _ := strings.Cut(ta, "/")
		if code, body := c.get(tenant, app, "/whoami"); code != 200 || !strings.HasPrefix(body, want) {
			ps, _ := c.cli("apps", "ps", ta)
			t.Fatalf("VICTIM HARMED: %s answers %d %q, want 200 %q\n%s", ta, code, body, want, ps)
		}
	}
}

// tally counts attempts per category, and those that succeeded (a wall that did not hold).
type tally struct {
	mu        sync.Mutex
	order     []string
	attempts  map[string]int
	succeeded map[string]int
}

func newTally() *tally {
	return &tally{attempts: map[string]int{}, succeeded: map[string]int{}}
}

// add counts one attempt; held says the wall held.
func (y *tally) add(category string, held bool) {
	y.mu.Lock()
	defer y.mu.Unlock()
	if _, ok := y.attempts[category]; !ok {
		y.order = append(y.order, category)
	}
	y.attempts[category]++
	if !held {
		y.succeeded[category]++
	}
}

// report logs the count of each category and returns the totals.
func (y *tally) report(t *testing.T) (attempts, succeeded int) {
	y.mu.Lock()
	defer y.mu.Unlock()
	for _, c := range y.order {
		t.Logf("  %-10s %5d attempts, %d succeeded", c, y.attempts[c], y.succeeded[c])
		attempts += y.attempts[c]
		succeeded += y.succeeded[c]
	}
	return attempts, succeeded
}

// probeApp writes an app directory below the cloud's holding the probe, a Procfile and,
// unless it is "", an enjin.json.
func (c *hostileCloud) probeApp(t *testing.T, dir, procfile, enjinJSON string) string {
	t.Helper()
	bin := filepath.Join(c.dir, "probe-bin")
	if _, err := os.Stat(bin); err != nil {
		if out, err := exec.Command("go", "build", "-o", bin, "./probe").CombinedOutput(); err != nil {
			t.Fatalf("build test/probe: %v\n%s", err, out)
		}
	}
	dir = filepath.Join(c.dir, dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(bin, filepath.Join(dir, "probe")); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"Procfile": procfile}
	if enjinJSON != "" {
		files["enjin.json"] = enjinJSON
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// psInfo is one instance as `enjin apps ps -o json` shows it.
type psInfo struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	State    string `json:"state"`
	Restarts int    `json:"restarts"`
	PID      int    `json:"pid"`
	Release  int    `json:"release"`
	Exit     string `json:"exit"`
}

// ps lists the app's instances as the admin sees them.
func (c *hostileCloud) ps(t *testing.T, ref string) []psInfo {
	t.Helper()
	var out struct {
		Instances []psInfo `json:"instances"`
	}
	if err := json.Unmarshal([]byte(c.must(t, "apps", "ps", ref, "-o", "json")), &out); err != nil {
		t.Fatalf("apps ps %s: %v", ref, err)
	}
	return out.Instances
}
