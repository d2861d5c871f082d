// Package process is the `process` supervision strategy: a parent runs a child node as an
// operating-system process and restarts it with backoff when it dies.
//
// Guarantees: the child runs in its own process group with a parent-death signal, so it
// never outlives a crashed supervisor; Run stops it (SIGTERM, then SIGKILL after a grace)
// and waits for it before returning. Restarts back off exponentially from Backoff.Min to
// Backoff.Max and the delay resets after the child has stayed up for Backoff.Reset.
//
// Confinement is in the same package: Sandbox (a re-exec helper that joins cgroups and a
// network namespace, builds a private read-only root in new PID, mount, IPC, UTS and cgroup
// namespaces, drops to the child's uid with no capabilities, no_new_privs and a seccomp
// filter, and stays as the child's init), Cgroups (v1 and v2 backends, chosen at start) and
// Network (a bridge with isolated ports, a veth pair and an address per child).
//
// Ring 0 uses it for ring 1 nodes on its own machine; ring 1 uses it for ring 2 apps.
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Spec says what to run.
type Spec struct {
	Name   string   // for logs
	Path   string   // executable
	Args   []string // arguments after the program name
	Env    []string // full environment; nil inherits the parent's
	Dir    string   // working directory
	Stdout io.Writer
	Stderr io.Writer
	// BeforeStart, if set, runs before every start (renewing a credential, say); an error
	// counts as a failed start.
	BeforeStart func(ctx context.Context) error
}

// Backoff bounds restarts. The zero value means 100ms doubling to 30s, reset after 60s up.
type Backoff struct {
	Min, Max, Reset time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = 100 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Reset <= 0 {
		b.Reset = time.Minute
	}
	return b
}

// Supervisor runs one child and keeps it running.
type Supervisor struct {
	spec    Spec
	backoff Backoff
	grace   time.Duration
	log     *slog.Logger

	restarts atomic.Int64
	mu       sync.Mutex
	pid      int
	started  chan struct{} // closed at the first successful start
	once     sync.Once
}

// New returns a supervisor for spec. grace is how long a stopping child gets between SIGTERM
// and SIGKILL (0 means 10s).
func New(spec Spec, backoff Backoff, grace time.Duration, log *slog.Logger) *Supervisor {
	if grace <= 0 {
		grace = 10 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{spec: spec, backoff: backoff.withDefaults(), grace: grace, log: log, started: make(chan struct{})}
}

// PID is the running child's pid, or 0.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// Restarts counts how many times the child was started again after dying.
func (s *Supervisor) Restarts() int64 { return s.restarts.Load() }

// Started is closed once the child has been started the first time.
func (s *Supervisor) Started() <-chan struct{} { return s.started }

// Run starts the child and restarts it whenever it exits, until ctx ends; then it stops the
// child and returns. It returns an error only if the child cannot be started at all the
// first time.
func (s *Supervisor) Run(ctx context.Context) error {
	delay := s.backoff.Min
	for first := true; ; first = false {
		cmd := s.command()
		err := error(nil)
		if s.spec.BeforeStart != nil {
			err = s.spec.BeforeStart(ctx)
		}
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			if first {
				return fmt.Errorf("process: start %s: %w", s.spec.Name, err)
			}
			s.log.Error("restart failed", "child", s.spec.Name, "err", err)
		} else {
			s.setPID(cmd.Process.Pid)
			s.once.Do(func() { close(s.started) })
			up := time.Now()
			err := s.wait(ctx, cmd)
			s.setPID(0)
			if ctx.Err() != nil {
				return nil
			}
			if time.Since(up) >= s.backoff.Reset {
				delay = s.backoff.Min
			}
			s.log.Warn("child exited; restarting", "child", s.spec.Name, "err", err, "after", delay)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, s.backoff.Max)
		s.restarts.Add(1)
	}
}

func (s *Supervisor) command() *exec.Cmd {
	cmd := exec.Command(s.spec.Path, s.spec.Args...)
	cmd.Env, cmd.Dir = s.spec.Env, s.spec.Dir
	cmd.Stdout, cmd.Stderr = s.spec.Stdout, s.spec.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// wait waits for the child to exit, or for ctx to end and then stops it: SIGTERM to its
// process group, SIGKILL after the grace.
func (s *Supervisor) wait(ctx context.Context, cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // ends when the child exits, which stop guarantees
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	pid := cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case err := <-done:
		return err
	case <-time.After(s.grace):
		s.log.Warn("child ignored SIGTERM; killing", "child", s.spec.Name, "grace", s.grace)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return <-done
	}
}

func (s *Supervisor) setPID(pid int) {
	s.mu.Lock()
	s.pid = pid
	s.mu.Unlock()
}

// ErrNotRunning is returned by Signal when no child is running.
var ErrNotRunning = errors.New("process: child not running")

// Signal sends sig to the running child (tests use it to kill a node).
func (s *Supervisor) Signal(sig syscall.Signal) error {
	pid := s.PID()
	if pid == 0 {
		return ErrNotRunning
	}
	return syscall.Kill(pid, sig)
}
