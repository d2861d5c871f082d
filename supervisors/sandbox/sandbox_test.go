package sandbox_test

import (
	"bufio"
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

	"enjin/supervisors/sandbox"
)

// playRole is what this test binary does when it runs in a sandbox, at /app/helper.
func playRole(role string) int {
	f := strings.Fields(role)
	switch f[0] {
	case "id":
		status, _ := os.ReadFile("/proc/self/status")
		nnp := ""
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "NoNewPrivs:"); ok {
				nnp = strings.TrimSpace(v)
			}
		}
		ns, _ := os.Readlink("/proc/self/ns/net")
		groups, _ := os.Getgroups()
		fmt.Printf("uid=%d euid=%d gid=%d groups=%d nnp=%s ns=%s\n", os.Getuid(), os.Geteuid(), os.Getgid(), len(groups), nnp, ns)
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

// role returns b's sandbox set to play role with this test binary.
func (b *box) role(role string) sandbox.Spec {
	sb := b.Spec
	sb.Path = "/app/helper"
	sb.Env = append(append([]string{}, sb.Env...), "ENJIN_ROLE="+role)
	return sb
}

func TestSandboxDropsPrivileges(t *testing.T) {
	b := newBox(t)
	out, errOut, _ := run(t, b.role("id"))
	want := fmt.Sprintf("uid=%d euid=%d gid=%d groups=0 nnp=1", b.UID, b.UID, b.GID)
	if !strings.Contains(out, want) {
		t.Fatalf("sandboxed child: got %q (stderr %q) want %q", out, errOut, want)
	}
	// A setuid-root copy of a program in the release gains nothing: /app is nosuid, and
	// no_new_privs would stop it anyway.
	suid := filepath.Join(b.release, "suid")
	copyFile(t, helper(), suid)
	if err := os.Chmod(suid, 0o4755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	sb := b.role("id")
	sb.Path = "/app/suid"
	if out, errOut, _ := run(t, sb); !strings.Contains(out, fmt.Sprintf("euid=%d", b.UID)) {
		t.Fatalf("setuid binary in the sandbox: %q (stderr %q)", out, errOut)
	}
	// Control: run directly as the same uid, a copy of the same file does make it root.
	dir, err := os.MkdirTemp("/tmp", "enjin-suid-") // t.TempDir() is not the uid's to enter
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	outside := filepath.Join(dir, "suid")
	copyFile(t, suid, outside)
	if err := os.Chmod(outside, 0o4755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(outside)
	cmd.Env = []string{"ENJIN_ROLE=id"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: b.UID, Gid: b.GID}}
	if got, _ := cmd.CombinedOutput(); !strings.Contains(string(got), "euid=0") {
		t.Fatalf("control: setuid binary outside the sandbox: %q (is /tmp mounted nosuid?)", got)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestSandboxLimits(t *testing.T) {
	cg, err := sandbox.DetectCgroups("enjin-test")
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("t%d", time.Now().UnixNano())
	// The helper stays as init, so its threads count against pids.max too.
	const pids = 24
	procs, err := cg.Create(name, sandbox.Limits{MemoryBytes: 64 << 20, Pids: pids, CPUMillis: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Remove(name)
	b := newBox(t)
	b.CgroupProcs = procs
	if out, errOut, code := run(t, b.role("hog 16")); !strings.Contains(out, "survived") || code != 0 {
		t.Fatalf("16 MiB under a 64 MiB limit: %q %q exit %d", out, errOut, code)
	}
	// The helper exits 128+9 when the kernel kills its child with SIGKILL.
	if out, errOut, code := run(t, b.role("hog 256")); strings.Contains(out, "survived") || code != 128+9 {
		t.Fatalf("256 MiB under a 64 MiB limit: %q %q exit %d, want 137", out, errOut, code)
	}
	out, _, _ := run(t, b.role("fork 60"))
	n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "started")))
	if !strings.HasPrefix(strings.TrimSpace(out), "started") || n >= pids {
		t.Fatalf("pids limit %d: %q", pids, out)
	}
	t.Logf("cgroup v%d: 256 MiB hog killed by SIGKILL; %d of 60 forks allowed under pids.max %d", cg.Version(), n, pids)
}

func TestNetworkIsolatesChildren(t *testing.T) {
	stamp := time.Now().UnixNano() % 200
	nw := &sandbox.Network{Bridge: fmt.Sprintf("enjt%d", stamp), Prefix: netip.MustParsePrefix(fmt.Sprintf("100.89.%d.0/24", stamp))}
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
	inB := newBox(t)
	inB.Netns = b.Netns
	runInB := func(role string) string {
		out, errOut, _ := run(t, inB.role(role))
		return strings.TrimSpace(out + errOut)
	}

	// A listens in its namespace; the host reaches it, B does not.
	ln := listenIn(t, a, 8080)
	defer ln()
	if !dialFromHost(netip.AddrPortFrom(a.Addr, 8080).String()) {
		t.Fatal("host cannot reach A")
	}
	if out := runInB("dial " + netip.AddrPortFrom(a.Addr, 8080).String()); out != "fail" {
		t.Fatalf("B reached A: %q", out)
	}
	out := runInB("id")
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
	if out := runInB("dial " + hostSvc); out != "ok" {
		t.Fatalf("control: B cannot reach the host without the firewall: %q", out)
	}
	if err := nw.Firewall(); err != nil {
		t.Fatal(err)
	}
	defer nw.RemoveFirewall()
	if out := runInB("dial " + hostSvc); out != "fail" {
		t.Fatalf("B reached a host service through the firewall: %q", out)
	}
	if !dialFromHost(netip.AddrPortFrom(a.Addr, 8080).String()) {
		t.Fatal("the firewall cut the host (router) off from A")
	}
	t.Logf("A %v, B %v on %s: host→A ok, B→A refused, B→host service refused behind the firewall", a.Addr, b.Addr, nw.Bridge)
}

// listenIn serves TCP on port inside e's namespace (as root, for the test) until stopped.
func listenIn(t *testing.T, e *sandbox.Endpoint, port int) func() {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", filepath.Base(e.Netns), "sh", "-c",
		fmt.Sprintf("exec %s", helper()))
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
