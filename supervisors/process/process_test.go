package process_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"enjin/supervisors/process"
	"enjin/test/harness"
)

func TestRestartsWithBackoffAndStops(t *testing.T) {
	s := process.New(process.Spec{Name: "sleeper", Path: "/bin/sleep", Args: []string{"1000"}},
		process.Backoff{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond}, time.Second, harness.Logger(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Started()
	for i := range 3 {
		pid := s.PID()
		if err := s.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 5*time.Second, func() bool { p := s.PID(); return p != 0 && p != pid }, "restart %d", i)
	}
	if s.Restarts() != 3 {
		t.Fatalf("restarts %d, want 3", s.Restarts())
	}
	pid := s.PID()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Fatalf("child %d still exists after Run returned: %v", pid, err)
	}
}

func TestStopKillsAChildThatIgnoresSIGTERM(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "trapped")
	s := process.New(process.Spec{Name: "stubborn", Path: "/bin/sh", Args: []string{"-c", "trap '' TERM; touch " + ready + "; while :; do sleep 0.05; done"}},
		process.Backoff{}, 200*time.Millisecond, harness.Logger(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Started()
	harness.Eventually(t, 5*time.Second, func() bool { _, err := os.Stat(ready); return err == nil }, "trap installed")
	pid := s.PID()
	t0 := time.Now()
	cancel()
	<-done
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("stop took %v", d)
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Fatalf("child %d survived: %v", pid, err)
	}
}

func TestStartFailureIsReported(t *testing.T) {
	s := process.New(process.Spec{Name: "missing", Path: "/nonexistent/enjin"}, process.Backoff{}, 0, nil)
	if err := s.Run(t.Context()); err == nil {
		t.Fatal("Run started a missing executable")
	}
}

// A child that keeps failing before it ever gets going is given up, and the error quotes what
// it wrote last.
func TestGivesUpOnAChildThatCannotStart(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "child.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	s := process.New(process.Spec{Name: "broken", Path: "/bin/sh", Args: []string{"-c", "echo starting; echo 'listen :7080: address in use' >&2; exit 3"},
		Stdout: log, Stderr: log, LogFile: logPath, GiveUp: 4}, process.Backoff{Min: 5 * time.Millisecond}, time.Second, harness.Logger(t))
	t0 := time.Now()
	err = s.Run(t.Context())
	se, ok := errors.AsType[*process.StartError](err)
	if !ok {
		t.Fatalf("Run: %v, want a *StartError", err)
	}
	if se.Failures != 4 || se.Tail[len(se.Tail)-1] != "listen :7080: address in use" || !strings.Contains(se.Exit, "exit status 3") {
		t.Fatalf("start error %+v", se)
	}
	if !strings.Contains(err.Error(), "address in use") {
		t.Fatalf("error %q does not quote the child", err)
	}
	t.Logf("gave up after %v: %v", time.Since(t0).Round(time.Millisecond), err)
}

// A detached child outlives its supervisor's death; the next supervisor with the same PID file
// adopts it rather than starting a second, stops it when told, and a changed command line makes
// it start a fresh one instead.
func TestDetachedChildIsAdopted(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "supervise")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/supervise").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	sup := exec.Command(bin, pidFile, "/bin/sleep", "1000")
	out, _ := sup.StdoutPipe()
	sup.Start()
	var pid int
	if _, err := fmt.Fscanf(out, "started %d\n", &pid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })
	sup.Process.Kill() // the supervisor dies; its detached child does not
	sup.Wait()
	if !harness.Alive(pid) {
		t.Fatalf("child %d died with its supervisor", pid)
	}

	s := process.New(process.Spec{Name: "child", Path: "/bin/sleep", Args: []string{"1000"}, Detach: true, PIDFile: pidFile},
		process.Backoff{}, time.Second, harness.Logger(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Started()
	if s.PID() != pid || !s.Adopted() {
		t.Fatalf("supervisor runs pid %d (adopted %v), want the running %d adopted", s.PID(), s.Adopted(), pid)
	}
	if n := countSleepers(t); n != 1 {
		t.Fatalf("%d children running, want 1", n)
	}
	// The adopted child dies: it is started again, as the supervisor's own.
	syscall.Kill(pid, syscall.SIGKILL)
	harness.Eventually(t, 5*time.Second, func() bool { p := s.PID(); return p != 0 && p != pid }, "restart after the adopted child died")
	second := s.PID()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if harness.Alive(second) {
		t.Fatalf("child %d survived Run's end", second)
	}
	if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file left after the child stopped: %v", err)
	}

	// A recorded child running another command line is replaced.
	sup = exec.Command(bin, pidFile, "/bin/sleep", "1000")
	out, _ = sup.StdoutPipe()
	sup.Start()
	if _, err := fmt.Fscanf(out, "started %d\n", &pid); err != nil {
		t.Fatal(err)
	}
	sup.Process.Kill()
	sup.Wait()
	s = process.New(process.Spec{Name: "child", Path: "/bin/sleep", Args: []string{"999"}, Detach: true, PIDFile: pidFile},
		process.Backoff{}, time.Second, harness.Logger(t))
	ctx, cancel = context.WithCancel(t.Context())
	go func() { done <- s.Run(ctx) }()
	<-s.Started()
	if s.Adopted() || s.PID() == pid || harness.Alive(pid) {
		t.Fatalf("old child %d (alive %v) adopted %v as %d", pid, harness.Alive(pid), s.Adopted(), s.PID())
	}
	cancel()
	<-done
}

func countSleepers(t *testing.T) int {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", "^/bin/sleep 1000$").Output()
	return len(strings.Fields(string(out)))
}
