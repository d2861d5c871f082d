// Package process is the `process` supervision strategy: a parent runs a child node as an
// operating-system process and restarts it with backoff when it dies.
//
// Guarantees: the child runs in its own process group; Run stops it (SIGTERM to the group,
// then SIGKILL after a grace) and waits for it before returning. Restarts back off
// exponentially from Backoff.Min to Backoff.Max and the delay resets after the child has
// stayed up for Backoff.Reset. A child that keeps failing before it ever stayed up for
// Spec.Stable is given up after Spec.GiveUp attempts, with the last lines it wrote quoted in
// the error. A detached child (Spec.Detach) outlives a supervisor that is killed, and a later
// supervisor with the same Spec.PIDFile adopts it instead of starting a second copy; without
// Detach the child gets a parent-death signal and never outlives a crashed supervisor.
//
// It supervises only: what confines a process (cgroups, network namespaces, the firewall,
// the sandbox's mounts and seccomp filter) is supervisors/sandbox. Ring 0 uses it for the
// ring 1 nodes on its own machine.
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
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
	// counts as a failed start. It does not run for an adopted child.
	BeforeStart func(ctx context.Context) error
	// Detach starts the child in a session of its own without a parent-death signal, so it
	// keeps running if the supervisor is killed. Run still stops it when its context ends.
	Detach bool
	// PIDFile, if set, records the running child (pid, kernel start time, command line). A
	// supervisor that finds the recorded child still running with the same command line
	// adopts it; one running with another command line is stopped first.
	PIDFile string
	// LogFile is the file the child's output goes to (Stdout and Stderr should write to it);
	// its last lines are quoted when the child fails to start.
	LogFile string
	// Stable is how long the child must run to count as started; 0 is 10 s.
	Stable time.Duration
	// GiveUp, if above 0, makes Run return a *StartError after that many failed starts in a
	// row before the child has ever been stable. Once stable, it is restarted forever.
	GiveUp int
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

// StartError says a child never got going: how often it failed and what it said last.
type StartError struct {
	Name     string
	Failures int
	Exit     string   // how the last attempt ended
	Tail     []string // the last lines of its log, oldest first
}

func (e *StartError) Error() string {
	last := "no output"
	if n := len(e.Tail); n > 0 {
		last = e.Tail[n-1]
	}
	for _, l := range e.Tail { // a command's one-line error, when it wrote one, says it best
		if strings.HasPrefix(l, "enjin: ") {
			last = l
		}
	}
	return fmt.Sprintf("process: %s failed to start %d times (%s): %s", e.Name, e.Failures, e.Exit, last)
}

// Supervisor runs one child and keeps it running.
type Supervisor struct {
	spec    Spec
	backoff Backoff
	grace   time.Duration
	log     *slog.Logger

	restarts atomic.Int64
	adopted  atomic.Bool
	ready    atomic.Bool // the child said it got going (MarkStable)
	mu       sync.Mutex
	pid      int
	started  chan struct{} // closed at the first successful start or adoption
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
	if spec.Stable <= 0 {
		spec.Stable = 10 * time.Second
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

// Adopted reports whether the child running now was found running rather than started.
func (s *Supervisor) Adopted() bool { return s.adopted.Load() }

// MarkStable tells the supervisor the child got going (it is serving, say), sooner than
// Spec.Stable would: from now on it is restarted forever, never given up on.
func (s *Supervisor) MarkStable() { s.ready.Store(true) }

// Started is closed once the child has been started (or adopted) the first time.
func (s *Supervisor) Started() <-chan struct{} { return s.started }

// Run starts the child (or adopts the one its PIDFile names) and restarts it whenever it
// exits, until ctx ends; then it stops the child and returns. It returns an error if the
// child cannot be started at all the first time, or a *StartError when it gives up.
func (s *Supervisor) Run(ctx context.Context) error {
	delay := s.backoff.Min
	stable, failures := false, 0
	for first := true; ; first = false {
		up := time.Now()
		exit, err := s.runOnce(ctx, first)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && first {
			return fmt.Errorf("process: start %s: %w", s.spec.Name, err)
		}
		ran := time.Since(up)
		stable = stable || ran >= s.spec.Stable || s.ready.Load()
		if ran >= s.backoff.Reset {
			delay = s.backoff.Min
		}
		if err == nil {
			err = exit
		}
		if !stable {
			failures++
			tail := lastLines(s.spec.LogFile, 10)
			s.log.Warn("child failed while starting", "child", s.spec.Name, "err", err, "attempt", failures, "output", tail)
			if s.spec.GiveUp > 0 && failures >= s.spec.GiveUp {
				return &StartError{Name: s.spec.Name, Failures: failures, Exit: fmt.Sprint(err), Tail: tail}
			}
		} else {
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

// runOnce adopts the recorded child (only on the first round) or starts one, and waits for
// it to exit or for ctx to end (then stops it). err is a failure to start; exit describes
// how a started child ended.
func (s *Supervisor) runOnce(ctx context.Context, first bool) (exit, err error) {
	if first && s.spec.PIDFile != "" {
		if c, ok := s.findRecorded(); ok {
			s.adopted.Store(true)
			s.setPID(c.Pid)
			s.once.Do(func() { close(s.started) })
			s.log.Info("adopted running child", "child", s.spec.Name, "pid", c.Pid)
			exit = s.waitAdopted(ctx, c.Pid)
			s.setPID(0)
			s.adopted.Store(false)
			return exit, nil
		}
	}
	if s.spec.BeforeStart != nil {
		if err := s.spec.BeforeStart(ctx); err != nil {
			return nil, err
		}
	}
	cmd := s.command()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.record(cmd.Process.Pid)
	s.setPID(cmd.Process.Pid)
	s.once.Do(func() { close(s.started) })
	exit = s.wait(ctx, cmd)
	s.setPID(0)
	s.forget()
	return exit, nil
}

func (s *Supervisor) command() *exec.Cmd {
	cmd := exec.Command(s.spec.Path, s.spec.Args...)
	cmd.Env, cmd.Dir = s.spec.Env, s.spec.Dir
	cmd.Stdout, cmd.Stderr = s.spec.Stdout, s.spec.Stderr
	if s.spec.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	return cmd
}

// wait waits for the child to exit, or for ctx to end and then stops it: SIGTERM to its
// process group, SIGKILL after the grace.
func (s *Supervisor) wait(ctx context.Context, cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // ends when the child exits, which stop guarantees
	select {
	case err := <-done:
		return exitError(err)
	case <-ctx.Done():
	}
	pid := cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case err := <-done:
		return exitError(err)
	case <-time.After(s.grace):
		s.log.Warn("child ignored SIGTERM; killing", "child", s.spec.Name, "grace", s.grace)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return exitError(<-done)
	}
}

func exitError(err error) error {
	if err == nil {
		return errors.New("exited with status 0")
	}
	return err
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
