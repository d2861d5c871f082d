package test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"enjin/test/harness"
)

// TestHostileTenants runs one cloud with two tenants' probe apps: acme (A), the victim, keeps
// secrets in its HOME, /tmp, /dev/shm, System V IPC and an abstract socket; evil (B) attacks
// A and the host from its own app's shell and with its own token, category by category.
// Every attempt must fail, ring 1 must keep its pid and A must keep answering as itself
// after every batch of at most 50 attempts.
func TestHostileTenants(t *testing.T) {
	t0 := time.Now()
	w := newWorld(t)
	for _, c := range []struct {
		name string
		run  func(*world, *testing.T)
	}{
		{"network", (*world).network},
		{"files", (*world).files},
		{"proc", (*world).proc},
		{"ipc", (*world).ipc},
		{"signals", (*world).signals},
		{"seccomp", (*world).seccomp},
		{"resources", (*world).resources},
		{"uids", (*world).uids},
		{"names", (*world).names},
		{"unpack", (*world).unpackRaces},
		{"api", (*world).api},
		{"cli", (*world).cliAsB},
		{"reader", (*world).reader},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(w, t) })
	}
	w.c.checkUnharmed(t)
	total, succeeded := w.c.tally.report(t)
	t.Logf("hostile: %d attempts in %d categories, %d succeeded, ring 1 pid %d unchanged",
		total, len(w.c.tally.order), succeeded, w.c.ring1)
	t.Logf("hostile: ran for %v", time.Since(t0).Round(time.Second))
	if total < 2000 || succeeded != 0 {
		t.Errorf("%d attempts, %d succeeded: want at least 2000, none succeeding", total, succeeded)
	}
}

// world is the cloud under attack and what the test knows of it from the host's side.
type world struct {
	c          *hostileCloud
	tokA, tokB string
	secret     string // in A's HOME, /tmp and /dev/shm
	envSecret  string // A's env value
	aAddr      netip.Addr
	bAddr      netip.Addr
	aInit      int // A's sandbox init, as the host sees it
	ipcKey     int
	release    int    // A's live release
	imageA     string // the id of A's VM image
	app        string // the probe app's directory
	hostNS     string // the host's pid namespace
}

// The cloud's read-only API user, from an htpasswd file.
const readerUser, readerPass = "auditor", "hostile-reader-pass"

func newWorld(t *testing.T) *world {
	hash, err := bcrypt.GenerateFromPassword([]byte(readerPass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htp := filepath.Join(tempDir(t, "enjin-htpasswd-"), "htpasswd")
	if err := os.WriteFile(htp, []byte(readerUser+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startHostile(t, 120, "--htpasswd", htp)
	w := &world{c: c, secret: "acme-secret-" + rand.Text(), envSecret: "acme-env-" + rand.Text(), ipcKey: 0x4163, release: 2}
	w.app = c.probeApp(t, "probe", "web: ./probe serve\n", "")
	for _, tn := range []string{"acme", "evil", "acme-shop"} {
		c.must(t, "tenants", "create", tn)
	}
	w.deploy(t, "acme", "probe", fmt.Sprintf(`{"health":"/healthz","env":{"ACME_SECRET":%q}}`, w.envSecret))
	// A's environment holds the secret twice: in its manifest and through the env API.
	admin, err := os.ReadFile(c.ep.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := c.call("Bearer "+strings.TrimSpace(string(admin)), "PUT", "/v1/tenants/acme/apps/probe/env",
		strings.NewReader(fmt.Sprintf(`{"env":{"ACME_API_SECRET":"%s-api"}}`, w.envSecret))); code != 200 {
		t.Fatalf("admin PUT A's env: %d %s", code, body)
	}
	w.deploy(t, "evil", "probe", `{"health":"/healthz","disk_mb":32,"tmp_mb":16}`)
	w.tokA = strings.TrimSpace(c.must(t, "tenants", "token", "acme"))
	w.tokB = strings.TrimSpace(c.must(t, "tenants", "token", "evil"))
	a, b := c.ps(t, "acme/probe")[0], c.ps(t, "evil/probe")[0]
	w.aAddr, w.bAddr, w.aInit = netip.MustParseAddr(a.Address), netip.MustParseAddr(b.Address), a.PID
	w.hostNS, _ = os.Readlink("/proc/self/ns/pid")

	// A keeps its secrets, through its own shell, and holds IPC objects open.
	c.mustSh(t, "acme", "probe", fmt.Sprintf(`umask 077 && echo %[1]s > /home/app/secret && chmod 600 /home/app/secret &&
echo %[1]s > /tmp/acme-secret && echo %[1]s > /dev/shm/acme-secret &&
(/app/probe ipc-hold %[2]d > /dev/null 2>&1 < /dev/null &)`, w.secret, w.ipcKey))
	c.mustSh(t, "evil", "probe", `echo evil > /tmp/evil-secret && echo evil > /dev/shm/evil-secret`)
	// The control: in A's own sandbox each of them is there, so the probes B runs can fail.
	controls := append(w.ipcAttempts(), "connect=127.0.0.1:8080", "absent=/home/app/secret", "unreadable=/home/app/secret",
		"unreadable=/tmp/acme-secret", "absent=/app/probe", "unwritable=/home/app/secret")
	harness.Eventually(t, 10*time.Second, func() bool {
		rs, err := c.probes("acme", "probe", controls)
		for _, r := range rs {
			if r.OK {
				return false
			}
		}
		return err == nil
	}, "A sees its own IPC objects and files")
	if out := c.mustSh(t, "acme", "probe", "cat /home/app/secret && stat -c %a /home/app/secret"); out != w.secret+"\n600\n" {
		t.Fatalf("A's own secret reads back %q", out)
	}
	c.guard("acme", "probe", fmt.Sprintf("acme/probe release %d ", w.release))
	c.checkUnharmed(t)
	return w
}

// deploy deploys the probe app as tenant/app with enjin.json manifest.
func (w *world) deploy(t *testing.T, tenant, app, manifest string) string {
	t.Helper()
	dir := w.c.probeApp(t, filepath.Join("apps", tenant, app), "web: ./probe serve\n", manifest)
	return w.c.must(t, "apps", "deploy", tenant+"/"+app, dir, "-q")
}

// ipcAttempts reach for A's System V objects, its /dev/shm file and its abstract socket.
func (w *world) ipcAttempts() []string {
	k := strconv.Itoa(w.ipcKey)
	return []string{"sysv-shm=" + k, "sysv-msg=" + k, "abstract=probe-" + k, "unreadable=/dev/shm/acme-secret"}
}

// servicePorts are ring 0's and ring 1's ports and some any host may have.
func (w *world) servicePorts(t *testing.T) []int {
	ports := []int{22, 25, 53, 80, 111, 443, 2375, 2379, 3306, 5432, 6379, 6443, 7070, 7071, 7080, 8080, 10250}
	for _, u := range []string{w.c.ep.API, w.c.ep.NATS, "tcp://" + w.c.ep.Router, "udp://" + w.c.ep.DNS} {
		ports = append(ports, portOf(t, u))
	}
	b, err := os.ReadFile(filepath.Join(w.c.state, "nodes", "ring1-local", "apps-api.addr"))
	if err != nil {
		t.Fatal(err)
	}
	return append(ports, portOf(t, "tcp://"+strings.TrimSpace(string(b))))
}

func portOf(t *testing.T, u string) int {
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p.Port())
	if err != nil {
		t.Fatalf("no port in %s", u)
	}
	return n
}

// network: B's instance tries A's instance on every low port and a sample of high ones,
// every service port of the gateway, its own loopback and every host address, the metadata
// address, and every other address of the bridge's prefix.
func (w *world) network(t *testing.T) {
	var a []string
	connect := func(addr netip.Addr, port int) {
		a = append(a, "connect="+netip.AddrPortFrom(addr, uint16(port)).String())
	}
	for p := 1; p <= 1024; p++ {
		connect(w.aAddr, p)
	}
	for p := 1025; p < 65536; p += 997 {
		connect(w.aAddr, p)
	}
	for _, p := range []int{8080, 8081, 8443, 9090, 15353, 17080} {
		connect(w.aAddr, p)
	}
	// The host's own services listen on loopback; canaries on every address show that the
	// firewall, not only where services listen, keeps B off the host.
	tcpCanary, udpCanary := canaries(t, w.c.prefix.Addr().Next())
	hosts := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	ifAddrs, _ := net.InterfaceAddrs()
	for _, ia := range ifAddrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() {
			hosts = append(hosts, p.Addr())
		}
	}
	dns := strconv.Itoa(portOf(t, "udp://"+w.c.ep.DNS))
	for _, h := range hosts {
		for _, p := range append(w.servicePorts(t), tcpCanary) {
			if !h.IsLoopback() || p != 8080 { // B's own loopback, where B itself listens
				connect(h, p)
			}
		}
		for _, p := range []string{dns, "53", strconv.Itoa(udpCanary)} {
			a = append(a, "udp-dns="+h.String()+":"+p)
		}
	}
	for _, p := range []int{80, 443, 8080} {
		connect(netip.MustParseAddr("169.254.169.254"), p)
	}
	for addr := w.c.prefix.Addr().Next().Next(); w.c.prefix.Contains(addr.Next()); addr = addr.Next() {
		if addr != w.bAddr { // every address but the gateway, B's own and the broadcast
			connect(addr, 8080)
		}
	}
	t.Logf("network: %d attempts from B (%s) at A (%s), %d host addresses and the prefix %s", len(a), w.bAddr, w.aAddr, len(hosts), w.c.prefix)
	w.c.attack(t, "network", "evil", "probe", a)
}

// canaries listen on every address of the host, TCP and UDP, answering whoever reaches
// them, until the test ends; the host itself reaches both at gw.
func canaries(t *testing.T, gw netip.Addr) (tcpPort, udpPort int) {
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	u, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); u.Close() })
	go func() { // ends when l is closed
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("canary\n"))
			c.Close()
		}
	}()
	go func() { // ends when u is closed
		b := make([]byte, 512)
		for {
			n, from, err := u.ReadFrom(b)
			if err != nil {
				return
			}
			u.WriteTo(b[:n], from)
		}
	}()
	tcpPort, udpPort = l.Addr().(*net.TCPAddr).Port, u.LocalAddr().(*net.UDPAddr).Port
	c, err := net.DialTimeout("tcp", netip.AddrPortFrom(gw, uint16(tcpPort)).String(), time.Second)
	if err != nil {
		t.Fatalf("the host does not reach its own canary: %v", err)
	}
	c.Close()
	uc, err := net.Dial("udp", netip.AddrPortFrom(gw, uint16(udpPort)).String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.SetDeadline(time.Now().Add(time.Second))
	uc.Write([]byte("ping"))
	if _, err := uc.Read(make([]byte, 8)); err != nil {
		t.Fatalf("the host does not reach its own UDP canary: %v", err)
	}
	return tcpPort, udpPort
}

// hostPaths are the host's places that hold A's code and data, the cloud's state and keys:
// none of them may exist inside B's sandbox.
func (w *world) hostPaths(t *testing.T) []string {
	s := w.c.state
	appDir := w.c.appsDir("apps", "acme", "probe")
	paths := []string{w.c.dir, s, filepath.Join(s, "keys"), filepath.Join(s, "admin.token"), filepath.Join(s, "admin.header"),
		filepath.Join(s, "ops.creds"), filepath.Join(s, "endpoints.json"), filepath.Join(s, "postgres"), filepath.Join(s, "images"),
		filepath.Join(s, "nodes", "ring1-local"), w.c.appsDir(), w.c.appsDir("staging"), w.c.appsDir("packages"),
		w.c.appsDir("sandbox"), appDir, filepath.Join(appDir, "app.json"), filepath.Join(appDir, "home"),
		filepath.Join(appDir, "home", "secret"), filepath.Join(appDir, "home.img"), filepath.Join(appDir, "releases", "1"),
		filepath.Join(appDir, "releases", "1", "probe"), "/var/lib/enjin", "/var/lib/enjin/uids", harness.Binary(t),
		fmt.Sprintf("/proc/%d/root/home/app/secret", w.aInit)}
	for _, dir := range []string{filepath.Join(s, "keys"), filepath.Join(s, "nodes", "ring1-local")} {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				paths = append(paths, p)
			}
			return nil
		})
	}
	return paths
}

// files: B looks for A's and the cloud's files at their host paths, for A's secrets where A
// keeps them in its own sandbox, and tries to read the host's secrets and write the OS, its
// own code and the root. A, in turn, does not see B's /tmp and /dev/shm.
func (w *world) files(t *testing.T) {
	var a []string
	for _, p := range w.hostPaths(t) {
		a = append(a, "absent="+p)
	}
	for _, p := range []string{"/home/app/secret", "/tmp/acme-secret", "/dev/shm/acme-secret"} {
		a = append(a, "absent="+p)
	}
	for _, p := range []string{"/etc/shadow", "/etc/gshadow", "/proc/kcore", "/proc/1/environ", "/proc/1/root/app"} {
		a = append(a, "unreadable="+p)
	}
	for _, p := range []string{"/usr/pwn", "/etc/pwn", "/etc/passwd", "/app/pwn", "/app/probe", "/pwn", "/home/pwn",
		"/var/pwn", "/run/pwn", "/bin/pwn", "/sbin/pwn", "/lib/pwn", "/dev/pwn", "/proc/sysrq-trigger",
		"/proc/sys/kernel/core_pattern", "/sys/pwn"} {
		a = append(a, "unwritable="+p)
	}
	t.Logf("files: %d attempts; none of %d host paths may exist in B's sandbox", len(a), len(w.hostPaths(t)))
	w.c.attack(t, "files", "evil", "probe", a)
	w.c.attack(t, "files", "acme", "probe", []string{"absent=/tmp/evil-secret", "absent=/dev/shm/evil-secret"})
}

// hostPids are the processes of A's instance, ring 0, ring 1, PostgreSQL and every sandbox's
// init, as the host sees them.
func (w *world) hostPids(t *testing.T) []int {
	ring0 := w.c.p.Cmd.Process.Pid
	pids := []int{ring0, w.c.ring1, w.aInit}
	pids = append(pids, descendants(w.aInit)...)
	for _, p := range descendants(ring0) {
		if p != w.c.ring1 && p != w.aInit && (strings.Contains(cmdline(p), "postgres") || strings.Contains(cmdline(p), "sandbox-exec")) {
			pids = append(pids, p)
		}
	}
	return pids
}

// proc: B reads /proc entries of the host's processes by their host pids, and checks it
// sees only its own pid namespace, whose pid 1 is its init.
func (w *world) proc(t *testing.T) {
	var a []string
	pids := w.hostPids(t)
	for _, p := range pids {
		for _, e := range []string{"", "cmdline", "environ", "mounts", "mountinfo", "status", "root", "cwd", "exe", "fd", "maps", "ns/pid"} {
			a = append(a, "absent="+filepath.Join("/proc", strconv.Itoa(p), e))
		}
	}
	a = append(a, "host-proc="+w.hostNS, "cgroup")
	t.Logf("proc: %d attempts on %d host pids %v", len(a), len(pids), pids)
	w.c.attack(t, "proc", "evil", "probe", a)
}

// ipc: B reaches for A's System V shared memory and message queue by key, its /dev/shm file
// and its abstract unix socket (A saw all of them in newWorld).
func (w *world) ipc(t *testing.T) {
	a := w.ipcAttempts()
	for _, k := range []int{w.ipcKey, w.ipcKey + 1, 0x1, 0x7fffffff} {
		a = append(a, fmt.Sprintf("sysv-shm=%d", k), fmt.Sprintf("sysv-msg=%d", k))
	}
	a = append(a, "absent=/dev/shm/acme-secret", "abstract=probe-"+strconv.Itoa(w.ipcKey+1), "ipc="+strconv.Itoa(w.ipcKey))
	w.c.attack(t, "ipc", "evil", "probe", a)
}

// signals: B signals A's processes, ring 0, ring 1 and PostgreSQL by host pid, which must all
// live on; then `kill -9 -1` in B ends only B's own processes, and B's instance restarts.
func (w *world) signals(t *testing.T) {
	pids := w.hostPids(t)
	var a []string
	for _, p := range pids {
		for _, sig := range []int{9, 15, 19, 0} {
			a = append(a, fmt.Sprintf("kill=%d:%d", p, sig))
		}
	}
	w.c.attack(t, "signals", "evil", "probe", a)
	for _, p := range pids {
		if !harness.Alive(p) {
			t.Errorf("WALL BROKEN (signals): host pid %d (%s) is gone after B signalled it", p, cmdline(p))
		}
	}
	before := w.c.ps(t, "evil/probe")[0]
	_, _, err := w.c.sh("evil", "probe", "kill -9 -1; sleep 5; echo survived")
	w.c.tally.add("signals", err != nil)
	if err == nil {
		t.Errorf("kill -9 -1 in B: its shell survived")
	}
	harness.Eventually(t, 20*time.Second, func() bool {
		now := w.c.ps(t, "evil/probe")
		code, _ := w.c.get("evil", "probe", "/whoami")
		return len(now) == 1 && now[0].Restarts > before.Restarts && now[0].State == "healthy" && code == 200
	}, "B's instance restarted after kill -9 -1")
	w.c.checkUnharmed(t)
	if a := w.c.ps(t, "acme/probe")[0]; a.PID != w.aInit || a.Restarts != 0 {
		t.Errorf("WALL BROKEN (signals): A's instance changed after B's kill -9 -1: %+v (init was %d)", a, w.aInit)
	}
	// B's /tmp went with its restart; its secrets are put back for the tests that follow.
	w.c.mustSh(t, "evil", "probe", `echo evil > /tmp/evil-secret && echo evil > /dev/shm/evil-secret`)
}

// seccomp: every probe of `probe run all` — user namespaces, mounts, ptrace, keyrings, eBPF,
// io_uring, the i386 ABI, capabilities, setuid and the rest — must hold in B.
func (w *world) seccomp(t *testing.T) {
	out, _, err := w.c.sh("evil", "probe", "exec /app/probe run all")
	if err != nil {
		t.Fatal(err)
	}
	held, n := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("probe run all: %v in %q", err, line)
		}
		n++
		w.c.tally.add("seccomp", r.OK)
		if r.OK {
			held++
		} else {
			t.Errorf("WALL BROKEN (seccomp): %s: %s", r.Probe, r.Detail)
		}
	}
	t.Logf("probe run all in B: %d of %d walls held", held, n)
	if n < 40 {
		t.Errorf("probe run all ran %d probes, want the whole set (40 or more)", n)
	}
	w.c.checkUnharmed(t)
}
