package sandbox_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"enjin/supervisors/sandbox"
	"enjin/test/harness"
)

// probeIn returns b's sandbox set to run test/probe with args.
func (b *box) probeIn(args ...string) sandbox.Spec {
	sb := b.Spec
	sb.Path, sb.Args = "/app/probe", args
	sb.Env = slices.Clone(sb.Env)
	return sb
}

// TestSandboxHidesTheSpec: the spec, with the child's environment, is in neither the
// helper's argv nor its environment; the child gets exactly Env, 300 KiB of it here.
func TestSandboxHidesTheSpec(t *testing.T) {
	b := newBox(t)
	sb := b.probeIn("trap")
	for i := range 10 {
		sb.Env = append(sb.Env, fmt.Sprintf("BIG%d=%s", i, strings.Repeat(string(rune('a'+i)), 30<<10)))
	}
	sb.Env = append(sb.Env, "SECRET=hunter2")
	r := start(t, sb)
	r.expect(t, "ready")
	pid := r.cmd.Process.Pid
	if got, want := procFile(t, pid, "cmdline"), helper()+"\x00sandbox-exec\x00"; got != want {
		t.Errorf("helper cmdline: got %q want %q", got, want)
	}
	if got := procFile(t, pid, "environ"); got != "" {
		t.Errorf("helper environ: got %d bytes %.80q, want none", len(got), got)
	}
	app := childOf(t, pid)
	if got, want := procFile(t, app, "environ"), strings.Join(sb.Env, "\x00")+"\x00"; got != want {
		t.Errorf("app environ: got %d bytes, want the %d of Env", len(got), len(want))
	}
	if got, want := procFile(t, app, "cmdline"), "/app/probe\x00trap\x00"; got != want {
		t.Errorf("app cmdline: got %q want %q", got, want)
	}
}

func procFile(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSandboxForwardsSignals: SIGTERM to the helper reaches the app, and the helper exits
// with the app's status. It also reports what the helper costs while it waits as init.
func TestSandboxForwardsSignals(t *testing.T) {
	b := newBox(t)
	r := start(t, b.probeIn("trap"))
	r.expect(t, "ready")
	pid := r.cmd.Process.Pid
	status := procFile(t, pid, "status")
	var rss []string
	for _, l := range strings.Split(status, "\n") {
		if k, v, _ := strings.Cut(l, ":"); k == "VmRSS" || k == "RssAnon" || k == "RssFile" || k == "Threads" {
			rss = append(rss, k+" "+strings.Join(strings.Fields(v), " "))
		}
	}
	t.Logf("helper as init: %s", strings.Join(rss, ", "))
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "got terminated")
	if code := r.wait(t); code != 42 {
		t.Fatalf("helper exit %d, want the app's 42; stderr %s", code, r.stderr)
	}
}

// TestSandboxPIDNamespace: nothing the app starts outlives it or the helper.
func TestSandboxPIDNamespace(t *testing.T) {
	for _, c := range []struct {
		name, mode string
		end        func(t *testing.T, b *box, r *running)
		code       int
	}{
		{"app exits, grandchild dies", "orphan", func(t *testing.T, b *box, r *running) {
			if err := os.WriteFile(filepath.Join(b.home, "exit"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"helper killed, all die", "tree", func(t *testing.T, b *box, r *running) {
			syscall.Kill(r.cmd.Process.Pid, syscall.SIGKILL)
		}, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBox(t)
			r := start(t, b.probeIn(c.mode))
			r.expect(t, "ready")
			var pids []int
			harness.Eventually(t, 10*time.Second, func() bool {
				pids = nsPids(t, r.cmd.Process.Pid)
				return len(pids) == 3 // helper, app, sleep
			}, "want 3 processes in the sandbox, got %v", pids)
			c.end(t, b, r)
			if code := r.wait(t); code != c.code {
				t.Fatalf("helper exit %d want %d; stderr %s", code, c.code, r.stderr)
			}
			for _, p := range pids {
				harness.Eventually(t, 5*time.Second, func() bool { return !alive(p) }, "pid %d of the sandbox outlived it", p)
			}
		})
	}
}

// TestSandboxSetupFailure: a sandbox that cannot be built says why in one line and exits
// 111, before the app runs.
func TestSandboxSetupFailure(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*sandbox.Spec)
		want string
	}{
		{"no root", func(sb *sandbox.Spec) { sb.Root = "/nonexistent/enjin-root" }, "enjin sandbox: root /nonexistent/enjin-root: "},
		{"root others may enter", func(sb *sandbox.Spec) { os.Chmod(sb.Root, 0o755) }, "enjin sandbox: root "},
		{"no netns", func(sb *sandbox.Spec) { sb.Netns = "/run/netns/enjin-missing" }, "enjin sandbox: netns /run/netns/enjin-missing: "},
		{"no cgroup", func(sb *sandbox.Spec) { sb.CgroupProcs = []string{"/sys/fs/cgroup/pids/enjin-missing/cgroup.procs"} }, "enjin sandbox: join cgroup: "},
		{"no bind source", func(sb *sandbox.Spec) {
			sb.Binds = append(sb.Binds, sandbox.Bind{Source: "/nonexistent", Target: "/data"})
		}, "enjin sandbox: root "},
		{"no program", func(sb *sandbox.Spec) { sb.Path = "/app/missing" }, "enjin sandbox: exec /app/missing: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			sb := newBox(t).probeIn("run", "umask")
			c.edit(&sb)
			out, errOut, code := run(t, sb)
			if code != 111 || out != "" {
				t.Errorf("exit %d, stdout %q; want 111 and nothing", code, out)
			}
			t.Logf("stderr: %s", strings.TrimSpace(errOut))
			if !strings.HasPrefix(errOut, c.want) || strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "\n") {
				t.Errorf("stderr %q, want one line starting %q", errOut, c.want)
			}
		})
	}
}

// TestSandboxLeavesHostMountsAlone runs 20 sandboxes, four at a time on one Root, and
// wants the host's mount table as it was. The Root is on a shared mount, as under systemd
// (this machine's mounts are private): a sandbox that did not make its mounts private would
// propagate them to the host.
func TestSandboxLeavesHostMountsAlone(t *testing.T) {
	shared := t.TempDir()
	if err := unix.Mount("enjin-test", shared, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(shared, unix.MNT_DETACH) }) // with whatever leaked below
	if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	before := hostMounts(t)
	b := newBox(t)
	b.Root = filepath.Join(shared, "root")
	if err := os.Mkdir(b.Root, 0o700); err != nil {
		t.Fatal(err)
	}
	sb := b.probeIn("run", "umask", "write-home")
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range 20 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out, errOut, code := run(t, sb)
			if code != 0 || strings.Count(out, `"ok":true`) != 2 {
				t.Errorf("sandbox %d: exit %d, %q %q", i, code, out, errOut)
			}
		})
	}
	wg.Wait()
	after := hostMounts(t)
	for _, m := range after {
		if !slices.Contains(before, m) {
			t.Errorf("new on the host: %s", m)
		}
	}
	for _, m := range before {
		if !slices.Contains(after, m) {
			t.Errorf("gone from the host: %s", m)
		}
	}
	if entries, _ := os.ReadDir(b.Root); len(entries) != 0 {
		t.Errorf("the shared root %s holds %d entries on the host", b.Root, len(entries))
	}
}

// hostMounts reads this process's mount table, leaving out the network namespaces that
// other tests on the machine bind under /run/netns meanwhile.
func hostMounts(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], "/run/netns/") && strings.Contains(l, " - nsfs ") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// TestProbeServe drives test/probe the way it will run as a deployed app: over HTTP.
func TestProbeServe(t *testing.T) {
	b := newBox(t)
	port := harness.FreePort(t)
	sb := b.probeIn("serve")
	sb.Env = append(sb.Env, fmt.Sprintf("PORT=%d", port))
	r := start(t, sb)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	harness.Eventually(t, 10*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "probe serve never healthy; stderr %s", r.stderr)

	resp, err := http.Get(base + "/probe?name=seccomp-mode")
	if err != nil {
		t.Fatal(err)
	}
	var res struct{ OK bool }
	json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if !res.OK {
		t.Errorf("GET /probe?name=seccomp-mode: %+v", res)
	}
	for _, c := range []struct{ script, out, code string }{
		{"id -u; echo $HOME", fmt.Sprintf("%d\n/home/app\n", b.UID), "0"},
		{"exit 3", "", "3"},
		{"head -c 100000 /dev/zero", strings.Repeat("\x00", 64<<10), "0"},
	} {
		resp, err := http.Post(base+"/sh", "text/plain", strings.NewReader(c.script))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(body, []byte(c.out)) || resp.Header.Get("X-Exit-Code") != c.code {
			t.Errorf("POST /sh %q: got %d bytes %.40q exit %s, want %d bytes exit %s",
				c.script, len(body), body, resp.Header.Get("X-Exit-Code"), len(c.out), c.code)
		}
	}
	syscall.Kill(r.cmd.Process.Pid, syscall.SIGTERM)
	if code := r.wait(t); code != 128+int(syscall.SIGTERM) {
		t.Errorf("helper exit %d, want 143 (the app killed by the forwarded SIGTERM)", code)
	}
}
