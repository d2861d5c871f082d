package apphost_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"enjin"
	"enjin/services/apphost"
	"enjin/services/router"
	"enjin/supervisors/sandbox"
	"enjin/test/harness"
)

var (
	helper    string // this test binary, executable by app uids: the sandbox helper
	sampleBin string // the sample app, built once
)

// testCgroups is where this run's instances get their cgroups: a name of its own, so that
// two runs on one machine do not take each other's groups.
var testCgroups = "enjin-test-apphost-" + strconv.Itoa(os.Getpid())

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.HelperArg {
		fmt.Fprintln(os.Stderr, "enjin", sandbox.Exec())
		os.Exit(111)
	}
	if slices.ContainsFunc(os.Args, func(a string) bool { return strings.HasPrefix(a, "-test.fuzzworker") }) {
		os.Exit(m.Run()) // a fuzzing worker runs a fuzz target only: no sample app to build
	}
	dir, err := os.MkdirTemp("/tmp", "enjin-apphost-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755)
	helper = filepath.Join(dir, "helper")
	b, _ := os.ReadFile(os.Args[0])
	if err := os.WriteFile(helper, b, 0o755); err != nil {
		panic(err)
	}
	sampleBin = filepath.Join(dir, "sampleapp")
	if out, err := exec.Command("go", "build", "-o", sampleBin, "../../test/sampleapp").CombinedOutput(); err != nil {
		panic(fmt.Sprintf("build sampleapp: %v\n%s", err, out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	bases, _ := filepath.Glob("/sys/fs/cgroup/*/" + testCgroups)
	deeper, _ := filepath.Glob("/sys/fs/cgroup/*/*/*/" + testCgroups) // memory sits deeper here
	for _, d := range append(bases, deeper...) {
		os.Remove(d) // empty once every instance is gone; one left holding a process stays
	}
	os.Exit(code)
}

// adapter lets the real router take apphost's routes.
type adapter struct{ *router.Router }

func (a adapter) SetRoute(tenant, app string, rs []apphost.Route) {
	bs := make([]router.Backend, len(rs))
	for i, r := range rs {
		bs[i] = router.Backend{ID: r.ID, Addr: r.Addr}
	}
	a.Router.SetRoute(tenant, app, bs)
}

// world is a host with a real bridge, firewall, cgroups and router.
type world struct {
	host   *apphost.Host
	router *router.Router
	url    string
	dir    string
	net    *sandbox.Network
}

func newWorld(t testing.TB) *world { return newWorldWith(t, nil) }

// newWorldWith is newWorld with the host's configuration changed by edit.
func newWorldWith(t testing.TB, edit func(*apphost.Config)) *world {
	t.Helper()
	stamp := time.Now().UnixNano() % 200
	nw := &sandbox.Network{Bridge: fmt.Sprintf("enja%d", stamp), Prefix: netip.MustParsePrefix(fmt.Sprintf("100.90.%d.0/24", stamp))}
	if err := nw.Ensure(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", nw.Bridge).Run() })
	if err := nw.Firewall(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.RemoveFirewall() })
	cg, err := sandbox.DetectCgroups(testCgroups)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := router.New(router.Config{Addr: "127.0.0.1:0", AppsDomain: "apps.test"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go rt.Serve(ctx, ln) // ends with ctx
	t.Cleanup(cancel)
	dir, _ := os.MkdirTemp("/tmp", "enjin-host-")
	os.Chmod(dir, 0o711)
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := apphost.Config{Dir: dir, Node: "ring1-test", Helper: helper, Network: nw, Cgroups: cg,
		Router: adapter{rt}, Grace: 2 * time.Second, HealthTimeout: 5 * time.Second, HealthEvery: 50 * time.Millisecond,
		Logger: harness.Logger(t)}
	if edit != nil {
		edit(&cfg)
	}
	h, err := apphost.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &world{host: h, router: rt, url: "http://" + ln.Addr().String(), dir: dir, net: nw}
}

// deploy deploys bundle b as tenant/name.
func (w *world) deploy(ctx context.Context, tenant, name string, b []byte) (apphost.Release, error) {
	return w.host.Deploy(ctx, enjin.TenantID(tenant), name, bytes.NewReader(b), nil)
}

// bundle packs the sample app with a Procfile and an optional enjin.json.
func bundle(t testing.TB, procfile, enjinJSON string) []byte {
	t.Helper()
	dir := t.TempDir()
	b, _ := os.ReadFile(sampleBin)
	os.WriteFile(filepath.Join(dir, "sampleapp"), b, 0o755)
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte(procfile), 0o644)
	if enjinJSON != "" {
		os.WriteFile(filepath.Join(dir, "enjin.json"), []byte(enjinJSON), 0o644)
	}
	p, err := apphost.Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (w *world) get(host string) (int, string) {
	req, _ := http.NewRequest("GET", w.url+"/", nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDeployScaleKillAndRollback(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	const host = "hello.acme.apps.test"
	prebuilt := bundle(t, "web: ./sampleapp\n", `{"health":"/healthz","memory_mb":64}`)
	t0 := time.Now()
	r1, err := w.deploy(ctx, "acme", "hello", prebuilt)
	if err != nil {
		lines, _, _, _ := w.host.Logs("acme", "hello", 20, false)
		t.Fatalf("%v; app log: %+v", err, lines)
	}
	code, body := w.get(host)
	t.Logf("deploy → first 200 in %v", time.Since(t0))
	if code != 200 || !strings.Contains(body, "release 1") {
		t.Fatalf("after deploy: %d %q", code, body)
	}
	if r1.Number != 1 || r1.Status != "live" {
		t.Fatalf("release %+v", r1)
	}

	// Scale to 3: all serve.
	if err := w.host.Scale(ctx, "acme", "hello", "web", 3); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 60 {
		code, body := w.get(host)
		if code != 200 {
			t.Fatalf("scaled: %d %q", code, body)
		}
		seen[body[strings.LastIndex(body, "instance ")+9:]] = true
	}
	if len(seen) != 3 {
		t.Fatalf("60 requests reached %d instances, want 3", len(seen))
	}

	// SIGKILL one: it serves again within a second, and the router never fails a request.
	ps, _ := w.host.Ps("acme", "hello")
	victim := ps[0]
	l := w.load(host, 1)
	killed := time.Now()
	syscall.Kill(-victim.PID, syscall.SIGKILL)
	harness.Eventually(t, 2*time.Second, func() bool {
		ps, _ := w.host.Ps("acme", "hello")
		for _, p := range ps {
			if p.ID == victim.ID && p.Restarts == 1 && p.State == apphost.Healthy {
				return true
			}
		}
		return false
	}, "killed instance healthy again")
	back := time.Since(killed)
	_, failed, _ := l.stop()
	t.Logf("SIGKILLed instance healthy again after %v; %d requests failed meanwhile", back, failed)
	if back > time.Second {
		t.Fatalf("instance back after %v, want within 1s", back)
	}

	// A release that never gets healthy is rolled back; no request reaches it.
	_, err = w.deploy(ctx, "acme", "hello", bundle(t, "web: ./sampleapp\n", `{"health":"/healthz","env":{"NEVER_HEALTHY":"1"}}`))
	if !errors.Is(err, apphost.ErrUnhealthy) {
		t.Fatalf("unhealthy deploy: %v", err)
	}
	if code, body := w.get(host); code != 200 || !strings.Contains(body, "release 1") {
		t.Fatalf("after the failed deploy: %d %q", code, body)
	}
	lines, _, _, _ := w.host.Logs("acme", "hello", 10000, false)
	for _, l := range lines {
		if l.Release == 2 && strings.HasPrefix(l.Line, "request") {
			t.Fatalf("release 2 served a request: %+v", l)
		}
	}
	rels, _ := w.host.Releases("acme", "hello")
	if rels[1].Status != "failed" || rels[0].Status != "live" {
		t.Fatalf("releases %+v", rels)
	}
}

func TestCrashLoopBacksOff(t *testing.T) {
	w := newWorld(t)
	if _, err := w.deploy(t.Context(), "acme", "crashy", bundle(t, "worker: ./sampleapp\n",
		`{"instances":{"worker":1},"env":{"CRASH":"1"}}`)); err != nil {
		t.Fatal(err)
	}
	var ps []apphost.InstanceInfo
	harness.Eventually(t, 5*time.Second, func() bool {
		ps, _ = w.host.Ps("acme", "crashy")
		return len(ps) == 1 && ps[0].Restarts == 4 && ps[0].State == apphost.Crashed
	}, "three immediate restarts, then a backoff")
	t0 := time.Now()
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru0)
	time.Sleep(2 * time.Second) // measuring CPU over a window: nothing to poll for
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru1)
	ps, _ = w.host.Ps("acme", "crashy")
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * 100 / time.Since(t0)
	t.Logf("after 4 crashes: %d restarts, state %s; CPU of children over 2s: %d%%", ps[0].Restarts, ps[0].State, cpu)
	if ps[0].Restarts != 4 || cpu >= 1 {
		t.Fatalf("crash loop not backing off: %+v, %d%% CPU", ps[0], cpu)
	}
}

// TestIsolation has tenant alpha's instance try, 100 times each, to reach tenant bravo's
// instance, the host's services on every address it could route to, and files it must not
// read. Nothing may get through; the host itself still reaches bravo (the router's path).
func TestIsolation(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.deploy(ctx, "bravo", "b", bundle(t, "web: ./sampleapp\n", `{"health":"/healthz"}`)); err != nil {
		t.Fatal(err)
	}
	bps, _ := w.host.Ps("bravo", "b")
	bAddr := bps[0].Address
	secret := filepath.Join(w.dir, "apps", "bravo", "b", "home", "secret")
	if err := os.WriteFile(secret, []byte("bravo's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Dir(secret)); err == nil { // bravo's own, as if bravo wrote it
		st := fi.Sys().(*syscall.Stat_t)
		os.Chown(secret, int(st.Uid), int(st.Gid))
	}
	// A host service listening on every address, as a control or bus port would.
	svc, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	go func() { // ends when svc closes
		for {
			c, err := svc.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := svc.Addr().(*net.TCPAddr).Port
	hostIP := ""
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !strings.HasPrefix(ipn.IP.String(), "100.") {
			hostIP = ipn.IP.String()
			break
		}
	}
	// Controls: the targets exist and the host reaches them.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(bAddr, "8080"), time.Second); err != nil {
		t.Fatalf("control: host cannot reach bravo: %v", err)
	} else {
		c.Close()
	}
	targets := []string{
		"tcp:" + net.JoinHostPort(bAddr, "8080"), "tcp:" + net.JoinHostPort(bAddr, "22"),
		"tcp:" + net.JoinHostPort(w.net.Gateway().String(), fmt.Sprint(port)),
		"tcp:" + net.JoinHostPort(w.net.Gateway().String(), "22"),
		"tcp:" + net.JoinHostPort("127.0.0.1", fmt.Sprint(port)),
		"file:/etc/shadow", "file:" + secret,
		"file:" + filepath.Join(w.dir, "apps", "bravo", "b", "releases", "1", "sampleapp"),
		"file:" + filepath.Join(w.dir, "apps", "bravo", "b", "app.json"),
	}
	// The bus (4222) and meta API (7070) ports on the host, wherever they listen.
	targets = append(targets, "tcp:"+net.JoinHostPort(w.net.Gateway().String(), "4222"),
		"tcp:"+net.JoinHostPort(w.net.Gateway().String(), "7070"))
	if hostIP != "" {
		targets = append(targets, "tcp:"+net.JoinHostPort(hostIP, fmt.Sprint(port)), "tcp:"+net.JoinHostPort(hostIP, "4222"))
	}
	if _, err := w.deploy(ctx, "alpha", "a", bundle(t, "web: ./sampleapp\n",
		`{"health":"/healthz","env":{"PROBE":"`+strings.Join(targets, ",")+`","PROBE_N":"100"}}`)); err != nil {
		t.Fatal(err)
	}
	var ok, fail int
	lines, _, _, _ := w.host.Logs("alpha", "a", 1000, false)
	probes := 0
	for _, l := range lines {
		var target string
		var o, f int
		if n, _ := fmt.Sscanf(l.Line, "probe %s ok=%d fail=%d", &target, &o, &f); n == 3 {
			probes++
			ok, fail = ok+o, fail+f
			t.Logf("%-60s ok=%d fail=%d", target, o, f)
			if o != 0 {
				t.Errorf("alpha reached %s %d times", target, o)
			}
		}
	}
	t.Logf("isolation: %d attempts from tenant alpha's instance, %d succeeded", ok+fail, ok)
	if probes != len(targets) || ok+fail < 1000 {
		t.Fatalf("%d of %d probes reported, %d attempts", probes, len(targets), ok+fail)
	}
}

// loader is clients asking an app through the router without pause, counting what fails.
type loader struct {
	ok, failed atomic.Int64
	first      atomic.Value // the first failure: status and body
	done       chan struct{}
	wg         sync.WaitGroup
}

// load starts n clients asking host through the router until stop.
func (w *world) load(host string, n int) *loader {
	l := &loader{done: make(chan struct{})}
	for range n {
		l.wg.Go(func() { // ends at stop
			for {
				select {
				case <-l.done:
					return
				default:
				}
				if code, body := w.get(host); code == 200 {
					l.ok.Add(1)
				} else {
					l.failed.Add(1)
					l.first.CompareAndSwap(nil, fmt.Sprintf("%d %q", code, body))
				}
			}
		})
	}
	return l
}

// stop ends the clients and says how many requests succeeded and failed, and the first failure.
func (l *loader) stop() (ok, failed int64, first any) {
	close(l.done)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.first.Load()
}

// TestZeroDowntimeDeploys deploys 20 new releases under steady load through the router, of
// an app with two instances and of one with a single one: not one request may fail.
func TestZeroDowntimeDeploys(t *testing.T) {
	for _, n := range []int{2, 1} {
		t.Run(fmt.Sprintf("%d instances", n), func(t *testing.T) { zeroDowntimeDeploys(t, n) })
	}
}

func zeroDowntimeDeploys(t *testing.T, n int) {
	w := newWorld(t)
	ctx := t.Context()
	const host = "zdt.acme.apps.test"
	if _, err := w.deploy(ctx, "acme", "zdt", bundle(t, "web: ./sampleapp\n", fmt.Sprintf(`{"health":"/healthz","instances":{"web":%d}}`, n))); err != nil {
		t.Fatal(err)
	}
	l := w.load(host, 2)
	t0 := time.Now()
	for i := range 20 {
		b := bundle(t, "web: ./sampleapp\n", fmt.Sprintf(`{"health":"/healthz","instances":{"web":%d},"env":{"N":"%d"}}`, n, i))
		if _, err := w.deploy(ctx, "acme", "zdt", b); err != nil {
			t.Fatalf("deploy %d: %v", i, err)
		}
	}
	ok, failed, first := l.stop()
	secs := time.Since(t0).Seconds()
	t.Logf("20 deploys in %.1fs under %.0f requests/s: %d ok, %d failed", secs, float64(ok+failed)/secs, ok, failed)
	if failed != 0 {
		t.Fatalf("%d requests failed during deploys (first: %v)", failed, first)
	}
	if rate := float64(ok) / secs; rate < 100 {
		t.Fatalf("load was only %.0f requests/s", rate)
	}
	if code, body := w.get(host); code != 200 || !strings.Contains(body, "release 21") {
		t.Fatalf("after 20 deploys: %d %q", code, body)
	}
}

// BenchmarkDeploy measures, per deploy of a prebuilt bundle, the time until the router
// answers 200 from the new release (p50 reported as deploy-p50-ms), and, per SIGKILL of the
// only instance, the time until it is healthy and serving again (kill-p50-ms).
func BenchmarkDeploy(b *testing.B) {
	w := newWorld(b)
	ctx := context.Background()
	const host = "bench.acme.apps.test"
	var deploys, kills []time.Duration
	for i := 0; b.Loop(); i++ {
		bundleI := bundle(b, "web: ./sampleapp\n", fmt.Sprintf(`{"health":"/healthz","env":{"N":"%d"}}`, i))
		t0 := time.Now() // the bundle is prebuilt: packing it is not part of a deploy
		r, err := w.deploy(ctx, "acme", "bench", bundleI)
		if err != nil {
			b.Fatal(err)
		}
		want := fmt.Sprintf("release %d ", r.Number)
		for {
			if code, body := w.get(host); code == 200 && strings.Contains(body, want) {
				break
			}
		}
		deploys = append(deploys, time.Since(t0))
		ps, _ := w.host.Ps("acme", "bench")
		t1 := time.Now()
		syscall.Kill(-ps[0].PID, syscall.SIGKILL)
		for {
			ps, _ := w.host.Ps("acme", "bench")
			if ps[0].Restarts > 0 && ps[0].State == apphost.Healthy {
				if code, _ := w.get(host); code == 200 {
					break
				}
			}
			time.Sleep(time.Millisecond)
		}
		kills = append(kills, time.Since(t1))
	}
	b.ReportMetric(float64(median(deploys).Microseconds())/1000, "deploy-p50-ms")
	b.ReportMetric(float64(median(kills).Microseconds())/1000, "kill-p50-ms")
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
