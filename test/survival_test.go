package test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"enjin/test/harness"
)

// TestRing1SurvivesSIGKILL kills ring 1 with SIGKILL ten times while apps are deployed. After
// each kill ring 0 starts it again; the new node kills what the old one left running (no
// tenant process may outlive its node), removes the old namespaces, devices and cgroups, and
// starts every live release again: every app serves, no release is marked failed, and what
// exists on the host is exactly what the running instances use.
func TestRing1SurvivesSIGKILL(t *testing.T) {
	c := newCloud(t)
	c.start()
	apps := c.deploySamples("acme/web", "acme/api", "beta/shop")
	c.cli("apps", "scale", "acme/web", "web=2")
	c.waitServing(apps)
	for i := range 10 {
		old := c.ring1PID()
		tenants := c.tenantPIDs()
		if len(tenants) < 4 {
			t.Fatalf("kill %d: %d tenant processes before the kill, want at least 4", i, len(tenants))
		}
		syscall.Kill(old, syscall.SIGKILL)
		harness.Eventually(t, 30*time.Second, func() bool { p := c.ring1PID(); return p != 0 && p != old && harness.Alive(p) },
			"kill %d: ring 1 started again", i)
		c.waitServing(apps)
		for _, pid := range tenants {
			if harness.Alive(pid) {
				t.Fatalf("kill %d: tenant process %d (%s) of the killed node still runs", i, pid, cmdline(pid))
			}
		}
		c.checkNoLeftovers(4) // web×2, api, shop
		for _, a := range apps {
			for _, r := range c.releases(a) {
				if r.Status == "failed" {
					t.Fatalf("kill %d: %s release %d marked failed", i, a, r.Number)
				}
			}
		}
	}
	t.Logf("ring 1 SIGKILLed 10 times: every app served again each time, no orphan, no leftover, no release failed")
}

// TestRing0SIGKILLUnderLoad kills `enjin up` (ring 0, its broker and its PostgreSQL) with
// SIGKILL under a steady stream of requests to an app: ring 1 keeps routing and serving, and
// not one request fails while ring 0 is gone, nor when `enjin up` runs again and adopts the
// running node — the same instances serve, none duplicated — and what the node observed
// meanwhile reaches the store.
func TestRing0SIGKILLUnderLoad(t *testing.T) {
	c := newCloud(t)
	c.start()
	apps := c.deploySamples("acme/web")
	c.cli("apps", "scale", "acme/web", "web=2")
	c.waitServing(apps)
	before := c.instances("acme/web")
	node := c.ring1PID()
	var ok, failed atomic.Int64
	var lastFail atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code, body := c.get("acme/web"); code == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
					lastFail.Store(fmt.Sprintf("%d %q", code, body))
				}
			}
		})
	}
	c.proc.Kill()
	killed := time.Now()
	harness.Eventually(t, 10*time.Second, func() bool { return !harness.Alive(c.postgresPID()) }, "PostgreSQL gone with ring 0")
	deadline := time.After(30 * time.Second)
	for alive := true; alive; {
		select {
		case <-deadline:
			alive = false
		case <-time.After(500 * time.Millisecond):
			if !harness.Alive(node) {
				t.Fatalf("ring 1 died %v after ring 0 was killed", time.Since(killed))
			}
		}
	}
	gone := ok.Load()
	c.start()
	after := c.instances("acme/web")
	time.Sleep(2 * time.Second) // keep the load on the adopted node for a while: nothing to poll
	close(stop)
	wg.Wait()
	t.Logf("ring 0 killed for %v: %d requests served meanwhile and through the restart, %d failed",
		time.Since(killed).Round(time.Second), ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed (last: %v)", failed.Load(), lastFail.Load())
	}
	if gone < 100 {
		t.Fatalf("only %d requests while ring 0 was gone", gone)
	}
	if p := c.ring1PID(); p != node {
		t.Fatalf("ring 1 is pid %d after the restart, want the adopted %d", p, node)
	}
	if n := countProcs(filepath.Join(c.state, "nodes", "ring1-local", "node.creds")); n != 1 {
		t.Fatalf("%d ring 1 processes, want 1", n)
	}
	if !slices.Equal(before, after) {
		t.Fatalf("instances before %v, after %v: want the same ones", before, after)
	}
	c.checkNoLeftovers(2)
	// What the node observed while ring 0 was away reached the store.
	harness.Eventually(t, 30*time.Second, func() bool { return c.observedGap(killed) < 3*time.Second },
		"the node's observations from while ring 0 was gone stored")
}

// cloud is one `enjin up` that a test kills and starts again on the same state and ports.
type cloud struct {
	t      *testing.T
	dir    string
	state  string
	args   []string
	bridge string
	proc   *harness.Proc
	ep     endpoints
	sample string // a directory with the sample app
	hostHB string // the heartbeat of hosts joined by joinHost; "" is 300ms
	// hostRouters makes the routers of hosts joined by joinHost listen on their fabric
	// address (port 7080), where the other hosts' routers reach them, not on loopback.
	hostRouters bool
}

func newCloud(t *testing.T) *cloud {
	dir := tempDir(t, "enjin-cloud-")
	n := harness.Unique(200)
	// A namespace an earlier, killed run left behind and the kernel will not let go of
	// (still mounted elsewhere) would make this cloud's first instance fail to start.
	for tries := 0; tries < 200; tries++ {
		if left, _ := filepath.Glob(fmt.Sprintf("/run/netns/enjin-enjsv%d-*", n)); len(left) == 0 {
			break
		}
		n = harness.Unique(200)
	}
	c := &cloud{t: t, dir: dir, state: filepath.Join(dir, "state"), bridge: fmt.Sprintf("enjsv%d", n)}
	c.args = []string{"up", "--state-dir", c.state, "--nats-port", strconv.Itoa(harness.FreePort(t)),
		"--api-addr", "127.0.0.1:" + strconv.Itoa(harness.FreePort(t)), "--heartbeat", "300ms", "--log-level", "warn",
		"--router", "127.0.0.1:" + strconv.Itoa(harness.FreePort(t)), "--router-tls", "127.0.0.1:" + strconv.Itoa(harness.FreePort(t)), "--dns", "127.0.0.1:" + strconv.Itoa(harness.FreePort(t)),
		"--bridge", c.bridge, "--prefix", fmt.Sprintf("100.95.%d.0/24", n)}
	t.Cleanup(func() {
		harness.StopDetached(t, c.state)
		harness.RemoveNode(t, c.bridge)
	})
	c.sample = filepath.Join(dir, "sample")
	os.MkdirAll(c.sample, 0o755)
	if out, err := exec.Command("go", "build", "-o", filepath.Join(c.sample, "sampleapp"), "./sampleapp").CombinedOutput(); err != nil {
		t.Fatalf("build sampleapp: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(c.sample, "Procfile"), []byte("web: ./sampleapp\n"), 0o644)
	os.WriteFile(filepath.Join(c.sample, "enjin.json"), []byte(`{"health":"/healthz","memory_mb":64}`), 0o644)
	return c
}

func (c *cloud) start() {
	c.t.Helper()
	os.Remove(filepath.Join(c.state, "endpoints.json"))
	c.proc = harness.Start(c.t, c.args...)
	harness.Eventually(c.t, 60*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(c.state, "endpoints.json"))
		return err == nil && json.Unmarshal(b, &c.ep) == nil
	}, "enjin up ready (output so far: %s)", c.proc.Out)
}

func (c *cloud) cli(args ...string) string {
	c.t.Helper()
	out, err := exec.Command(harness.Binary(c.t), append(args, "--state-dir", c.state)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("enjin %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// deploySamples creates the tenants and deploys the sample app as each TENANT/APP.
func (c *cloud) deploySamples(refs ...string) []string {
	c.t.Helper()
	made := map[string]bool{}
	for _, ref := range refs {
		tenant, _, _ := strings.Cut(ref, "/")
		if !made[tenant] {
			c.cli("tenants", "create", tenant)
			made[tenant] = true
		}
		c.cli("apps", "deploy", ref, c.sample, "-q")
	}
	return refs
}

func (c *cloud) get(ref string) (int, string) { return c.getPath(ref, "/") }

// getPath asks app ref for path through the router.
func (c *cloud) getPath(ref, path string) (int, string) {
	tenant, app, _ := strings.Cut(ref, "/")
	req, _ := http.NewRequest("GET", "http://"+c.ep.Router+path, nil)
	req.Host = app + "." + tenant + "." + c.ep.AppsDomain
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *cloud) waitServing(apps []string) {
	c.t.Helper()
	for _, a := range apps {
		harness.Eventually(c.t, 60*time.Second, func() bool { code, _ := c.get(a); return code == 200 }, "%s serving", a)
	}
}

// ring1PID is the ring 1 node's pid from its PID file, or 0.
func (c *cloud) ring1PID() int {
	b, err := os.ReadFile(filepath.Join(c.state, "nodes", "ring1-local", "ring1.pid"))
	if err != nil {
		return 0
	}
	var rec struct{ Pid int }
	json.Unmarshal(b, &rec)
	return rec.Pid
}

func (c *cloud) postgresPID() int {
	b, err := os.ReadFile(filepath.Join(c.state, "postgres", "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	return pid
}

// tenantPIDs are every process in the node's instance cgroups.
func (c *cloud) tenantPIDs() []int {
	var out []int
	files, _ := filepath.Glob("/sys/fs/cgroup/pids/enjin-ring1-local-" + c.bridge + "/*/cgroup.procs")
	more, _ := filepath.Glob("/sys/fs/cgroup/enjin-ring1-local-" + c.bridge + "/*/cgroup.procs")
	for _, f := range append(files, more...) {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(s)
			out = append(out, pid)
		}
	}
	return out
}

type releaseInfo struct {
	Number int    `json:"number"`
	Status string `json:"status"`
}

func (c *cloud) releases(ref string) []releaseInfo {
	var r struct{ Releases []releaseInfo }
	json.Unmarshal([]byte(c.cli("apps", "releases", ref, "-o", "json")), &r)
	return r.Releases
}

// instances are the ids of the app's instances, sorted.
func (c *cloud) instances(ref string) []string {
	var r struct {
		Instances []struct{ ID string }
	}
	json.Unmarshal([]byte(c.cli("apps", "ps", ref, "-o", "json")), &r)
	var ids []string
	for _, in := range r.Instances {
		ids = append(ids, in.ID)
	}
	slices.Sort(ids)
	return ids
}

// checkNoLeftovers: the node's network namespaces, veths and cgroups are exactly those of
// its n running instances.
func (c *cloud) checkNoLeftovers(n int) {
	c.t.Helper()
	var last string
	ok := harness.Poll(10*time.Second, func() bool {
		ns, _ := filepath.Glob("/run/netns/enjin-" + c.bridge + "-*")
		out, _ := exec.Command("ip", "-o", "link", "show", "master", c.bridge).Output()
		veths := strings.Count(string(out), "\n")
		groups, _ := filepath.Glob("/sys/fs/cgroup/pids/enjin-ring1-local-" + c.bridge + "/*")
		dirs := 0
		for _, g := range groups {
			if fi, err := os.Stat(g); err == nil && fi.IsDir() {
				dirs++
			}
		}
		last = fmt.Sprintf("%d namespaces, %d veths, %d cgroups", len(ns), veths, dirs)
		return len(ns) == n && veths == n && dirs == n
	})
	if !ok {
		c.t.Fatalf("want exactly %d namespaces, veths and cgroups, have %s", n, last)
	}
}

// observedGap is the longest time between two of the node's stored observations made after
// since (by the time each says it was made).
func (c *cloud) observedGap(since time.Time) time.Duration {
	var r struct {
		Observations []struct {
			Payload string `json:"payload"`
		} `json:"observations"`
	}
	apiGet(c.t, c.ep, "/v1/nodes/ring1-local/observations?limit=1000", &r)
	var times []time.Time
	for _, o := range r.Observations {
		var obs struct{ Time time.Time }
		if json.Unmarshal(decodeB64(o.Payload), &obs) == nil && obs.Time.After(since.Add(-time.Second)) {
			times = append(times, obs.Time)
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	if len(times) < 2 || times[len(times)-1].Sub(since) < 30*time.Second {
		return time.Hour
	}
	gap := time.Duration(0)
	for i := 1; i < len(times); i++ {
		gap = max(gap, times[i].Sub(times[i-1]))
	}
	return gap
}

func countProcs(match string) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && harness.Alive(pid) && strings.Contains(cmdline(pid), match) {
			n++
		}
	}
	return n
}

func decodeB64(s string) []byte {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	return b
}
