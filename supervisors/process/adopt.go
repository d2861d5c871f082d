package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// recorded is what a PID file holds: enough to recognise the same process later even if its
// pid has been reused by another one since.
type recorded struct {
	Pid     int      `json:"pid"`
	Start   uint64   `json:"start"` // the kernel's start time of the process, in clock ticks
	Command []string `json:"command"`
}

func (s *Supervisor) commandLine() []string {
	return append([]string{s.spec.Path}, s.spec.Args...)
}

// record writes the PID file for a child just started.
func (s *Supervisor) record(pid int) {
	if s.spec.PIDFile == "" {
		return
	}
	start, err := startTime(pid)
	if err != nil {
		s.log.Warn("child not recorded", "child", s.spec.Name, "err", err)
		return
	}
	b, _ := json.Marshal(recorded{Pid: pid, Start: start, Command: s.commandLine()})
	tmp := s.spec.PIDFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		err = os.Rename(tmp, s.spec.PIDFile)
	}
	if err != nil {
		s.log.Warn("child not recorded", "child", s.spec.Name, "err", err)
	}
}

func (s *Supervisor) forget() {
	if s.spec.PIDFile != "" {
		os.Remove(s.spec.PIDFile)
	}
}

// findRecorded returns the child the PID file names if it is still that process and runs the
// same command line. A recorded child with another command line (the supervisor's
// configuration changed) is stopped, so a fresh one starts in its place.
func (s *Supervisor) findRecorded() (recorded, bool) {
	b, err := os.ReadFile(s.spec.PIDFile)
	if err != nil {
		return recorded{}, false
	}
	var c recorded
	if json.Unmarshal(b, &c) != nil || c.Pid <= 1 {
		s.forget()
		return recorded{}, false
	}
	if st, err := startTime(c.Pid); err != nil || st != c.Start {
		s.forget() // gone, or the pid now belongs to another process
		return recorded{}, false
	}
	if !slices.Equal(c.Command, s.commandLine()) {
		s.log.Info("stopping a recorded child started with another command line", "child", s.spec.Name, "pid", c.Pid)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s.waitAdopted(ctx, c.Pid)
		s.forget()
		return recorded{}, false
	}
	return c, true
}

// waitAdopted waits for an adopted child — not ours to wait(2) for — to exit, through a
// pidfd, or for ctx to end, and then stops it like our own: SIGTERM to its process group,
// SIGKILL after the grace.
func (s *Supervisor) waitAdopted(ctx context.Context, pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if waitFD(ctx, fd, -1) {
		return errors.New("adopted child exited")
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	if waitFD(context.Background(), fd, s.grace) {
		return errors.New("adopted child stopped")
	}
	s.log.Warn("child ignored SIGTERM; killing", "child", s.spec.Name, "grace", s.grace)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	waitFD(context.Background(), fd, -1)
	return errors.New("adopted child killed")
}

// waitFD waits until fd is readable (a pidfd is when its process has exited) and reports
// true, or until ctx ends or timeout passes (negative: none) and reports false.
func waitFD(ctx context.Context, fd int, timeout time.Duration) bool {
	r, w, err := os.Pipe()
	if err != nil {
		return false
	}
	defer r.Close()
	stop := context.AfterFunc(ctx, func() { w.Close() })
	defer func() {
		if stop() {
			w.Close()
		}
	}()
	ms := -1
	if timeout >= 0 {
		ms = int(timeout / time.Millisecond)
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(r.Fd()), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) {
			if timeout >= 0 {
				ms = max(0, int(time.Until(deadline)/time.Millisecond))
			}
			continue
		}
		if err != nil || n == 0 {
			return false
		}
		return fds[0].Revents != 0
	}
}

// startTime reads the kernel's start time of pid (field 22 of /proc/pid/stat).
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: fields count from the
	// last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("process: /proc/%d/stat unreadable", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("process: /proc/%d/stat unreadable", pid)
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22 is the 20th after the name
}

// lastLines returns up to n last lines of the file at path, oldest first.
func lastLines(path string, n int) []string {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	const window = 8 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		f.Seek(fi.Size()-window, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, window))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(b) == window && len(lines) > 1 {
		lines = lines[1:] // the first may be cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	return lines
}
