package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Sandbox is what a child is confined by. SysProcAttr cannot join a network namespace or set
// no_new_privs, so a small helper — this same binary, re-executed — applies the sandbox as
// root and then execs the child: it joins the cgroups, enters the network namespace, drops
// to the child's uid/gid with no supplementary groups, sets no_new_privs (setuid binaries
// then grant nothing) and execs.
type Sandbox struct {
	UID, GID    uint32
	Netns       string   // a network namespace to enter (e.g. /run/netns/x); "" keeps the parent's
	CgroupProcs []string // cgroup.procs files to join (from Cgroups.Create)
	NoNewPrivs  bool
	Dir         string // working directory
	Path        string // the child's executable
	Args        []string
	Env         []string
}

// sandboxEnv carries the sandbox to the helper.
const sandboxEnv = "ENJIN_SANDBOX"

// HelperArg is the first argument that makes a binary act as the sandbox helper; the enjin
// binary checks for it before anything else (see ExecSandbox).
const HelperArg = "sandbox-exec"

// Command returns the command that runs the sandboxed child through helper (the path of a
// binary that calls ExecSandbox when its first argument is HelperArg).
func (sb Sandbox) Command(helper string) (*exec.Cmd, error) {
	if sb.Path == "" {
		return nil, errors.New("process: sandbox without a path")
	}
	b, err := json.Marshal(sb)
	if err != nil {
		return nil, fmt.Errorf("process: sandbox: %w", err)
	}
	cmd := exec.Command(helper, HelperArg)
	cmd.Env = []string{sandboxEnv + "=" + string(b)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// ExecSandbox is the helper: it applies the sandbox described in the environment and execs
// the child. It returns only on failure.
func ExecSandbox() error {
	var sb Sandbox
	if err := json.Unmarshal([]byte(os.Getenv(sandboxEnv)), &sb); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	// Namespaces belong to threads: enter and exec from this one.
	runtime.LockOSThread()
	pid := strconv.Itoa(os.Getpid())
	for _, p := range sb.CgroupProcs {
		if err := os.WriteFile(p, []byte(pid), 0o644); err != nil {
			return fmt.Errorf("sandbox: join cgroup: %w", err)
		}
	}
	if sb.Netns != "" {
		fd, err := unix.Open(sb.Netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("sandbox: netns %s: %w", sb.Netns, err)
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("sandbox: enter netns %s: %w", sb.Netns, err)
		}
		unix.Close(fd)
	}
	if sb.Dir != "" {
		if err := os.Chdir(sb.Dir); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("sandbox: setgroups: %w", err)
	}
	if err := syscall.Setgid(int(sb.GID)); err != nil {
		return fmt.Errorf("sandbox: setgid %d: %w", sb.GID, err)
	}
	if err := syscall.Setuid(int(sb.UID)); err != nil {
		return fmt.Errorf("sandbox: setuid %d: %w", sb.UID, err)
	}
	if sb.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("sandbox: no_new_privs: %w", err)
		}
	}
	argv := append([]string{sb.Path}, sb.Args...)
	return fmt.Errorf("sandbox: exec %s: %w", sb.Path, syscall.Exec(sb.Path, argv, sb.Env))
}
