package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exec is the helper: it reads the sandbox from its spec pipe, confines itself and
// runs the child as the PID namespace's init (see Spec). It returns only on failure,
// with an error that reads "sandbox: <what>: <why>"; otherwise it exits with the child's
// status.
func Exec() error {
	// The init that stays behind needs little: one P, and a GC that keeps the heap small.
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(20)
	// Network and cgroup namespaces, capability bounding sets and no_new_privs belong to
	// threads: set them up on this one and start the child from it.
	runtime.LockOSThread()
	sb, err := readSpec()
	if err != nil {
		return err
	}
	if os.Getpid() != 1 {
		// Without the namespaces Command asks for, the mounts below would be the host's.
		return fmt.Errorf("sandbox: namespaces: helper is pid %d, not the init of a new pid namespace", os.Getpid())
	}
	if err := sb.validate(); err != nil {
		return fmt.Errorf("sandbox: spec: %w", err)
	}
	sb = sb.withDefaults()
	for _, step := range []struct {
		what string
		do   func(*Spec) error
	}{
		{"join cgroup", joinCgroups},
		{"netns " + sb.Netns, enterNetns},
		{"cgroup namespace", func(*Spec) error { return unix.Unshare(unix.CLONE_NEWCGROUP) }},
		{"hostname", func(sb *Spec) error { return unix.Sethostname([]byte(sb.Hostname)) }},
		{"root " + sb.Root, buildRoot},
		{"rlimits", setRlimits},
		{"capabilities", dropBoundingSet},
		{"credentials", dropCredentials},
		{"seccomp", func(*Spec) error { return loadSeccomp() }},
		{"dir " + sb.Dir, func(sb *Spec) error { return os.Chdir(sb.Dir) }},
	} {
		if err := step.do(&sb); err != nil {
			return fmt.Errorf("sandbox: %s: %w", step.what, err)
		}
	}
	return runInit(&sb)
}

// readSpec reads the sandbox from the spec pipe to its end and closes it.
func readSpec() (Spec, error) {
	var sb Spec
	f := os.NewFile(specFD, "spec")
	if f == nil {
		return sb, fmt.Errorf("sandbox: spec: no fd %d", specFD)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSpec+1))
	if err != nil {
		return sb, fmt.Errorf("sandbox: spec: %w", err)
	}
	if err := json.Unmarshal(b, &sb); err != nil {
		return sb, fmt.Errorf("sandbox: spec: %w", err)
	}
	return sb, nil
}

func joinCgroups(sb *Spec) error {
	for _, p := range sb.CgroupProcs {
		// "0" is the writer: the whole thread group, whatever its pid looks like from here.
		if err := os.WriteFile(p, []byte("0"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func enterNetns(sb *Spec) error {
	if sb.Netns == "" {
		return nil
	}
	fd, err := unix.Open(sb.Netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Setns(fd, unix.CLONE_NEWNET)
}

// setRlimits sets the file limit, no core dumps (they would land in the child's HOME with
// whatever secrets its memory held) and a small locked-memory allowance. The helper is
// still root, so these are set, not negotiated: a failure is an error.
func setRlimits(sb *Spec) error {
	for _, l := range []struct {
		name     string
		resource int
		value    uint64
	}{
		{"nofile", unix.RLIMIT_NOFILE, sb.NoFile},
		{"core", unix.RLIMIT_CORE, 0},
		{"memlock", unix.RLIMIT_MEMLOCK, 64 << 10},
	} {
		// syscall's Setrlimit, so that ForkExec does not restore the soft file limit Go
		// started with.
		if err := syscall.Setrlimit(l.resource, &syscall.Rlimit{Cur: l.value, Max: l.value}); err != nil {
			return fmt.Errorf("%s %d: %w", l.name, l.value, err)
		}
	}
	return nil
}

// dropBoundingSet empties this thread's capability bounding set and ambient set, which the
// child inherits: even a file capability or setuid binary (which no_new_privs and nosuid
// disarm already) would then grant nothing.
func dropBoundingSet(*Spec) error {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return err
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop %d: %w", c, err)
		}
	}
	return unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
}

// dropCredentials becomes the child's uid and gid, with no supplementary groups, and
// leaves root behind for good. Go applies setuid and friends to every thread.
func dropCredentials(sb *Spec) error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(int(sb.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", sb.GID, err)
	}
	if err := syscall.Setuid(int(sb.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", sb.UID, err)
	}
	syscall.Umask(0o077)
	return nil
}
