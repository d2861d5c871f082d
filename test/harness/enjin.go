package harness

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"enjin/bus/broker"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds the enjin binary once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("/tmp", "enjin-bin-")
		if err != nil {
			buildErr = err
			return
		}
		os.Chmod(dir, 0o755)
		binPath = filepath.Join(dir, "enjin")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/enjin")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{err, out}
		}
	})
	if buildErr != nil {
		t.Fatalf("build enjin: %v", buildErr)
	}
	return binPath
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

// Proc is an enjin process a test started.
type Proc struct {
	Cmd *exec.Cmd
	Out *SyncBuffer
}

// Adopt starts cmd (an enjin command the test built, e.g. with a working directory of its own)
// like Start does.
func Adopt(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	p := &Proc{Cmd: cmd, Out: out}
	t.Cleanup(func() {
		p.Stop(time.Minute)
		if t.Failed() {
			t.Logf("output of %v:\n%s", cmd.Args, out.String())
		}
	})
	return p
}

// Wait waits up to d for the process to exit and returns its exit status.
func (p *Proc) Wait(t testing.TB, d time.Duration) int {
	t.Helper()
	done := make(chan struct{})
	go func() { // ends when the process exits; cleanup kills it at the latest
		_ = p.Cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("%v did not exit within %v", p.Cmd.Args, d)
		return -1
	}
}

// Start runs the enjin binary with args in its own process group; at cleanup it is stopped
// (SIGTERM, so it stops what it started, then SIGKILL to its group) and its output is shown if
// the test failed.
func Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	return Adopt(t, exec.Command(Binary(t), args...))
}

// Kill SIGKILLs the process and its group and reaps it. It is safe to call twice. Children
// that detached (a ring 1 node started by ring 0) survive it, as they would in production.
func (p *Proc) Kill() {
	if p.Cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	_ = p.Cmd.Wait()
}

// Stop sends SIGTERM and waits up to grace for the process to exit (an enjin process stops
// everything it started), then kills its group. It is safe to call twice.
func (p *Proc) Stop(grace time.Duration) {
	if p.Cmd.ProcessState != nil {
		return
	}
	done := make(chan struct{})
	go func() { // ends when the process has exited, which the kill below guarantees
		_ = p.Cmd.Wait()
		close(done)
	}()
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL) // whatever is left of its group
}

// StopDetached stops, with SIGTERM and then SIGKILL, every ring 1 node that a ring 0 with
// state dir state started and that outlived it (its PID file is nodes/<id>/ring1.pid), and
// waits for each to exit. Tests that SIGKILL ring 0 call it at cleanup.
func StopDetached(t testing.TB, state string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(state, "nodes", "*", "ring1.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var rec struct{ Pid int }
		if json.Unmarshal(b, &rec) != nil || !Alive(rec.Pid) {
			continue
		}
		_ = syscall.Kill(-rec.Pid, syscall.SIGTERM)
		deadline := time.Now().Add(time.Minute)
		for Alive(rec.Pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		_ = syscall.Kill(-rec.Pid, syscall.SIGKILL)
	}
}

// Alive reports whether pid exists and has not exited (a zombie waiting for its parent to
// reap it counts as gone).
func Alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// uniqueSeq counts Unique's answers, from a start that differs between test processes.
var (
	uniqueSeq   atomic.Int64
	uniqueStart = sync.OnceValue(func() int64 { return time.Now().UnixNano() })
)

// Unique returns a number below mod that no earlier call in this process returned, until mod
// calls have been made: for the names and address blocks of what a test makes (bridges,
// prefixes), which two tests must never share — the one that ran before may still be
// stopping.
func Unique(mod int) int { return int((uniqueStart() + uniqueSeq.Add(1)) % int64(mod)) }

// FreePort returns a loopback port, free for TCP and UDP a moment ago, that FreePort has not
// returned before in this process: a test that asks for several ports at once gets several.
// It comes from below the kernel's ephemeral range, as broker.FreePort explains.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	p, err := broker.FreePort(func(p int) bool { return givenPorts[p] })
	if err != nil {
		t.Fatal(err)
	}
	givenPorts[p] = true
	return p
}

var (
	portsMu    sync.Mutex
	givenPorts = map[int]bool{}
)

// Itoa is strconv.Itoa, for building flag lists.
func Itoa(i int) string { return strconv.Itoa(i) }

// SyncBuffer is a bytes.Buffer safe for concurrent writes (a process's output, a server's log).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
