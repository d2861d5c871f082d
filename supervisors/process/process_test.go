package process_test

import (
	"context"
	"os"
	"path/filepath"
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
