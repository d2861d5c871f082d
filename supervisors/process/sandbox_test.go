package process_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"enjin/supervisors/process"
)

// helper is a copy of this test binary that other uids can execute; it acts as the sandbox
// helper (first argument process.HelperArg) and as the sandboxed programs (ENJIN_ROLE).
var helper string

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == process.HelperArg {
		err := process.ExecSandbox()
		fmt.Fprintln(os.Stderr, err)
		os.Exit(111)
	}
	if role := os.Getenv("ENJIN_ROLE"); role != "" {
		os.Exit(playRole(role))
	}
	dir, err := os.MkdirTemp("/tmp", "enjin-sbx-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755)
	helper = filepath.Join(dir, "helper")
	b, _ := os.ReadFile(os.Args[0])
	if err := os.WriteFile(helper, b, 0o755); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// playRole is what a sandboxed child does.
func playRole(role string) int {
	f := strings.Fields(role)
	switch f[0] {
	case "id":
		status, _ := os.ReadFile("/proc/self/status")
		nnp := ""
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "NoNewPrivs:") {
				nnp = strings.TrimSpace(strings.TrimPrefix(l, "NoNewPrivs:"))
			}
		}
		ns, _ := os.Readlink("/proc/self/ns/net")
		fmt.Printf("uid=%d euid=%d gid=%d groups=%d nnp=%s ns=%s\n", os.Getuid(), os.Geteuid(), os.Getgid(), len(mustGroups()), nnp, ns)
	case "hog":
		mb, _ := strconv.Atoi(f[1])
		b := make([]byte, mb<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Println("survived")
	case "dial":
		c, err := net.DialTimeout("tcp", f[1], 500*time.Millisecond)
		if err != nil {
			fmt.Println("fail")
			return 0
		}
		c.Close()
		fmt.Println("ok")
	case "serve":
		ln, err := net.Listen("tcp", ":"+f[1])
		if err != nil {
			fmt.Println("listen:", err)
			return 1
		}
		fmt.Println("ready")
		for {
			c, err := ln.Accept()
			if err != nil {
				return 0
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	case "fork":
		n, _ := strconv.Atoi(f[1])
		started := 0
		for range n {
			cmd := exec.Command("/bin/sleep", "5")
			if cmd.Start() != nil {
				break
			}
			started++
			defer cmd.Process.Kill()
		}
		fmt.Println("started", started)
	}
	return 0
}

func mustGroups() []int { g, _ := os.Getgroups(); return g }

// run runs a role in sb and returns its output and exit state.
func run(t *testing.T, sb process.Sandbox, role string) (string, *os.ProcessState) {
	t.Helper()
	sb.Path = helper
	sb.Env = append(sb.Env, "ENJIN_ROLE="+role)
	if sb.Dir == "" {
		sb.Dir = "/"
	}
	cmd, err := sb.Command(helper)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	return out.String(), cmd.ProcessState
}

func TestSandboxDropsPrivileges(t *testing.T) {
	out, _ := run(t, process.Sandbox{UID: 40001, GID: 40001, NoNewPrivs: true}, "id")
	if !strings.Contains(out, "uid=40001 euid=40001 gid=40001 groups=0 nnp=1") {
		t.Fatalf("sandboxed child: %q", out)
	}
	// A setuid-root copy of a program gains nothing under no_new_privs.
	dir, _ := os.MkdirTemp("/tmp", "enjin-suid-")
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	suid := filepath.Join(dir, "suid")
	b, _ := os.ReadFile(helper)
	os.WriteFile(suid, b, 0o755)
	if err := os.Chmod(suid, 0o4755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	sb := process.Sandbox{UID: 40001, GID: 40001, NoNewPrivs: true, Path: suid, Env: []string{"ENJIN_ROLE=id"}, Dir: "/"}
	cmd, _ := sb.Command(helper)
	got, _ := cmd.CombinedOutput()
	if !strings.Contains(string(got), "euid=40001") {
		t.Fatalf("setuid binary under no_new_privs: %q", got)
	}
	// Control: without no_new_privs the same binary would run as root.
	sb.NoNewPrivs = false
	cmd, _ = sb.Command(helper)
	got, _ = cmd.CombinedOutput()
	if !strings.Contains(string(got), "euid=0") {
		t.Fatalf("control: setuid binary without no_new_privs: %q (is /tmp mounted nosuid?)", got)
	}
}

func TestSandboxLimits(t *testing.T) {
	cg, err := process.DetectCgroups("enjin-test")
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("t%d", time.Now().UnixNano())
	procs, err := cg.Create(name, process.Limits{MemoryBytes: 64 << 20, Pids: 8, CPUMillis: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Remove(name)
	sb := process.Sandbox{UID: 40001, GID: 40001, NoNewPrivs: true, CgroupProcs: procs}
	if out, st := run(t, sb, "hog 16"); !strings.Contains(out, "survived") || !st.Success() {
		t.Fatalf("16 MiB under a 64 MiB limit: %q %v", out, st)
	}
	out, st := run(t, sb, "hog 256")
	ws := st.Sys().(syscall.WaitStatus)
	if strings.Contains(out, "survived") || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("256 MiB under a 64 MiB limit: %q %v", out, st)
	}
	out, _ = run(t, sb, "fork 30")
	n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "started")))
	if !strings.HasPrefix(strings.TrimSpace(out), "started") || n >= 8 {
		t.Fatalf("pids limit 8: %q", out)
	}
	t.Logf("cgroup v%d: 256 MiB hog killed by SIGKILL; %d of 30 forks allowed under pids.max 8", cg.Version(), n)
}

func TestNetworkIsolatesChildren(t *testing.T) {
	stamp := time.Now().UnixNano() % 200
	nw := &process.Network{Bridge: fmt.Sprintf("enjt%d", stamp), Prefix: netip.MustParsePrefix(fmt.Sprintf("100.89.%d.0/24", stamp))}
	if err := nw.Ensure(); err != nil {
		t.Fatal(err)
	}
	defer exec.Command("ip", "link", "del", nw.Bridge).Run()
	a, err := nw.Attach("a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := nw.Attach("b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// A listens in its namespace; the host reaches it, B does not.
	ln := listenIn(t, a, 8080)
	defer ln()
	if !dialFromHost(netip.AddrPortFrom(a.Addr, 8080).String()) {
		t.Fatal("host cannot reach A")
	}
	out, _ := run(t, process.Sandbox{UID: 40002, GID: 40002, NoNewPrivs: true, Netns: b.Netns}, "dial "+netip.AddrPortFrom(a.Addr, 8080).String())
	if strings.TrimSpace(out) != "fail" {
		t.Fatalf("B reached A: %q", out)
	}
	out, _ = run(t, process.Sandbox{UID: 40002, GID: 40002, NoNewPrivs: true, Netns: b.Netns}, "id")
	host, _ := os.Readlink("/proc/self/ns/net")
	if !strings.Contains(out, "ns=") || strings.Contains(out, "ns="+host) {
		t.Fatalf("B shares the host's network namespace: %q", out)
	}
	// The host's own services, on the gateway address the children route through: reachable
	// before the firewall (so the network works), refused after.
	hostLn, err := net.Listen("tcp", netip.AddrPortFrom(nw.Gateway(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer hostLn.Close()
	go func() { // ends when hostLn closes
		for {
			c, err := hostLn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	hostSvc := hostLn.Addr().String()
	if out, _ := run(t, process.Sandbox{UID: 40002, GID: 40002, NoNewPrivs: true, Netns: b.Netns}, "dial "+hostSvc); strings.TrimSpace(out) != "ok" {
		t.Fatalf("control: B cannot reach the host without the firewall: %q", out)
	}
	if err := nw.Firewall(); err != nil {
		t.Fatal(err)
	}
	defer nw.RemoveFirewall()
	if out, _ := run(t, process.Sandbox{UID: 40002, GID: 40002, NoNewPrivs: true, Netns: b.Netns}, "dial "+hostSvc); strings.TrimSpace(out) != "fail" {
		t.Fatalf("B reached a host service through the firewall: %q", out)
	}
	if !dialFromHost(netip.AddrPortFrom(a.Addr, 8080).String()) {
		t.Fatal("the firewall cut the host (router) off from A")
	}
	t.Logf("A %v, B %v on %s: host→A ok, B→A refused, B→host service refused behind the firewall", a.Addr, b.Addr, nw.Bridge)
}

// listenIn serves TCP on port inside e's namespace (as root, for the test) until stopped.
func listenIn(t *testing.T, e *process.Endpoint, port int) func() {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", filepath.Base(e.Netns), "sh", "-c",
		fmt.Sprintf("exec %s", helper))
	cmd.Env = []string{"ENJIN_ROLE=serve " + strconv.Itoa(port)}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(pipe).ReadString('\n') // blocks until the listener is up
	if err != nil || !strings.HasPrefix(line, "ready") {
		cmd.Process.Kill()
		t.Fatalf("listener in %s: %q %v", e.Netns, line, err)
	}
	return func() { cmd.Process.Kill(); cmd.Wait() }
}

func dialFromHost(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	return string(b) == "hi"
}
