package sandbox_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"enjin/supervisors/sandbox"
	"enjin/test/harness"
)

// fixtures is a directory of programs for sandboxes to run: helper, a copy of this test
// binary (the sandbox helper when its first argument is sandbox.HelperArg, a sandboxed
// program when ENJIN_ROLE is set), and probe (test/probe, built on first use).
var fixtures string

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.HelperArg {
		fmt.Fprintln(os.Stderr, "enjin", sandbox.Exec()) // as cmd/enjin does
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
	fixtures = dir
	b, _ := os.ReadFile(os.Args[0])
	if err := os.WriteFile(filepath.Join(dir, "helper"), b, 0o755); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func helper() string { return filepath.Join(fixtures, "helper") }

var (
	probeOnce sync.Once
	probeErr  error
)

// probeBinary builds test/probe into the fixtures, once.
func probeBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(fixtures, "probe")
	probeOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", bin, "../../test/probe").CombinedOutput()
		if err != nil {
			probeErr = fmt.Errorf("build test/probe: %v\n%s", err, out)
		}
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return bin
}

// nextUID hands each sandbox a uid no other has used, away from other test runs' too.
var nextUID atomic.Uint32

func init() { nextUID.Store(200000 + uint32(os.Getpid()%1000)*100) }

// box is a sandbox for one test: a fresh uid, a Root under a temporary directory, the
// fixtures hard-linked into a release owned by that uid (so only the read-only mount keeps
// the app from writing it) shown at /app, and a HOME at /home/app.
type box struct {
	sandbox.Spec
	release, home string
}

func newBox(t *testing.T) *box {
	t.Helper()
	uid := nextUID.Add(1)
	dir := t.TempDir()
	b := &box{release: filepath.Join(dir, "release"), home: filepath.Join(dir, "home")}
	for _, d := range []string{b.release, b.home} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, int(uid), int(uid)); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(b.release, 0o755)
	probeBinary(t)
	for _, f := range []string{"helper", "probe"} {
		if err := os.Link(filepath.Join(fixtures, f), filepath.Join(b.release, f)); err != nil {
			t.Fatal(err)
		}
	}
	b.Spec = sandbox.Spec{UID: uid, GID: uid, Root: rootDir(t), Dir: "/app",
		Binds: []sandbox.Bind{{Source: b.release, Target: "/app"}, {Source: b.home, Target: "/home/app", Writable: true}},
		Env:   []string{"PATH=/usr/bin:/bin", "HOME=/home/app"}}
	return b
}

// rootDir makes an empty directory for Spec.Root. It removes it afterwards only if it
// is still empty: were a sandbox's mounts to leak onto it, a recursive removal would reach
// into the host's directories they show.
func rootDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "enjin-root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("sandbox root %s not empty afterwards: %v", dir, err)
		}
	})
	return dir
}

// running is a started sandbox whose output lines arrive on a channel.
type running struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *bytes.Buffer
	done   chan struct{} // closed when cmd.Wait has returned
	err    error
}

// start starts sb (Path and Args set) and stops it, if need be, when the test ends.
func start(t *testing.T, sb sandbox.Spec) *running {
	t.Helper()
	cmd, err := sb.Command(helper())
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r := &running{cmd: cmd, lines: make(chan string, 1024), stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles[0].Close()
	go func() { // ends when the sandbox closes its stdout and exits
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	})
	return r
}

// expect waits for a line starting with prefix and returns it.
func (r *running) expect(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				t.Fatalf("sandbox ended without printing %q; stderr: %s", prefix, r.stderr)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("no line %q after 30s; stderr: %s", prefix, r.stderr)
		}
	}
}

// wait waits for the sandbox to exit and returns its exit code.
func (r *running) wait(t *testing.T) int {
	t.Helper()
	for range r.lines {
	}
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("sandbox still running after 30s")
	}
	return r.cmd.ProcessState.ExitCode()
}

// run runs sb to the end and returns its output and exit code.
func run(t *testing.T, sb sandbox.Spec) (stdout, stderr string, code int) {
	t.Helper()
	cmd, err := sb.Command(helper())
	if err != nil {
		t.Fatal(err)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	_ = cmd.Run()
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// nsPids lists the host pids of the processes in pid's PID namespace.
func nsPids(t *testing.T, pid int) []int {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p)); err == nil && l == ns {
			pids = append(pids, p)
		}
	}
	return pids
}

// childOf returns the host pid of a child of pid, once it has one.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	var child int
	harness.Eventually(t, 10*time.Second, func() bool {
		for _, p := range nsPids(t, pid) {
			if ppid(p) == pid {
				child = p
				return true
			}
		}
		return false
	}, "no child of the helper %d", pid)
	return child
}

func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields start after the last ")".
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }
