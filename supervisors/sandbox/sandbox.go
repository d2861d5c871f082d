// Package sandbox confines a process: the walls a child runs inside, not how it is kept
// running (supervisors/process does that).
//
// Spec.Command starts a child through a helper — this same binary, re-executed with
// HelperArg, which calls Exec — that joins the child's cgroups and network namespace, builds a
// private read-only root in new PID, mount, IPC, UTS and cgroup namespaces, drops to the
// child's uid with no capabilities, no_new_privs and a seccomp filter, and stays as the
// child's init, forwarding signals and reaping orphans. Cgroups (v1 and v2 backends, chosen by
// DetectCgroups) make groups with Limits, read their usage and kill all a group holds. Network
// is a host bridge with isolated ports that gives each child a network namespace, a veth pair
// and an address, and reserves addresses for VMs on it; its Firewall (nftables) leaves each
// child alone with the host, which may open connections to it but not it to the host, bar the
// ports AllowGuest and AllowHost open.
//
// Guarantees: the child is never root; its spec, with its environment, is in neither the
// helper's argv nor its environment; nothing started in the sandbox outlives the helper; a
// sandbox that cannot be set up exits 111 after one line on stderr, before the child runs.
// Everything here needs root. Ring 1 uses it: services/apphost confines app instances with
// it, and ring 1's VMs join its Network.
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Bind shows a host file or directory inside the sandbox.
type Bind struct {
	Source   string // on the host
	Target   string // inside the sandbox, e.g. /app or /home/app
	Writable bool   // read-only unless set; always nosuid and nodev
}

// Spec is what a child is confined by. A small helper — this same binary, re-executed
// with HelperArg, see Exec — is started by Command in new PID, mount, IPC and UTS
// namespaces. Still root, it joins the cgroups and the network namespace, builds a root of
// its own (the host's OS read-only, the binds, private /tmp, /dev and /proc, nothing else of
// the host) and pivots into it, then drops to UID/GID with no groups and no capabilities,
// sets no_new_privs, loads a seccomp filter and, as the namespace's init, starts the child,
// forwards it signals and reaps orphans. The child sees only what Binds show it.
type Spec struct {
	UID, GID    uint32   // the child's; never 0
	Hostname    string   // in the sandbox's UTS namespace; "" is "app"
	Netns       string   // a network namespace to enter (e.g. /run/netns/x); "" keeps the parent's
	CgroupProcs []string // cgroup.procs files to join (from Cgroups.Create), before anything else
	// Root is an existing empty directory on the host, owned by root and mode 0700, on which
	// the helper mounts the sandbox's root inside its own mount namespace. One directory can
	// serve every sandbox: each mounts privately and the host never sees the mounts.
	Root     string
	Binds    []Bind
	TmpBytes int64  // size of the private tmpfs /tmp; 0 is 64 MiB
	ShmBytes int64  // size of the private tmpfs /dev/shm; 0 is TmpBytes
	NoFile   uint64 // RLIMIT_NOFILE, soft and hard; 0 is 4096
	Dir      string // working directory, inside the sandbox; "" is /
	Path     string // the child's executable, inside the sandbox
	Args     []string
	Env      []string // the child's whole environment; only the child sees it
}

// HelperArg is the first argument that makes a binary act as the sandbox helper; the enjin
// binary checks for it before anything else (see Exec).
const HelperArg = "sandbox-exec"

// specFD is where the helper finds the sandbox, as JSON: a pipe, so that nothing of it
// (the child's environment may hold the tenant's secrets) is in the helper's argv or
// environment, which any process of the same uid can read in /proc.
const specFD = 3

// maxSpec bounds the spec; execve refuses an environment much larger anyway.
const maxSpec = 16 << 20

// namespaces are the ones the helper starts in. The network namespace is entered by the
// helper instead (an existing one, with the child's veth), and the cgroup namespace made by
// it after it has joined the cgroups, so that its root is the child's group.
const namespaces = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS

// Command returns the command that runs the sandboxed child through helper (the path of a
// binary that calls Exec when its first argument is HelperArg). The caller sets its
// Stdout and Stderr and starts it; its Stdin is not passed on (the child reads /dev/null).
// The helper exits with the child's status, or 128+n if a signal n killed the child, or 111
// if the sandbox could not be set up, after one line on stderr.
//
// The spec travels in cmd.ExtraFiles[0], the read end of a pipe it has been written to; the
// caller may close it once the command has started (the garbage collector does otherwise).
func (sb Spec) Command(helper string) (*exec.Cmd, error) {
	if err := sb.validate(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	b, err := json.Marshal(sb)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	r, err := specPipe(b)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	cmd := exec.Command(helper, HelperArg)
	cmd.Env = []string{} // empty, not nil: nil would pass on ours
	cmd.ExtraFiles = []*os.File{r}
	// No Pdeathsig: the helper's setuid would clear it. Whoever runs the sandbox stops it
	// through its cgroup or by killing the helper, which takes the whole PID namespace along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: namespaces, Setpgid: true}
	return cmd, nil
}

// specPipe returns the read end of a pipe holding b. The pipe is grown to hold all of b,
// which is then written at once, so the write cannot block whether or not a reader ever
// comes. Where b is larger than this host lets a pipe grow (fs.pipe-max-size, 1 MiB, for
// a process without CAP_SYS_RESOURCE), a goroutine writes it instead.
func specPipe(b []byte) (*os.File, error) {
	if len(b) > maxSpec {
		return nil, fmt.Errorf("spec of %d bytes, more than %d", len(b), maxSpec)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	if err := growPipe(w, len(b)); err != nil {
		go func() { // ends when the helper has read it all or every read end is closed (EPIPE)
			w.Write(b)
			w.Close()
		}()
		return r, nil
	}
	defer w.Close()
	if _, err := w.Write(b); err != nil {
		r.Close()
		return nil, fmt.Errorf("spec pipe: %w", err)
	}
	return r, nil
}

// growPipe makes the pipe w writes to hold at least n bytes.
func growPipe(w *os.File, n int) error {
	rc, err := w.SyscallConn()
	if err != nil {
		return err
	}
	cerr := rc.Control(func(fd uintptr) {
		var size int
		if size, err = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0); err == nil && size < n {
			_, err = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, n)
		}
	})
	return errors.Join(err, cerr)
}

// reserved are the sandbox's own directories, which binds may not cover or enter.
var reserved = []string{"/usr", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin",
	"/tmp", "/var", "/dev", "/proc", "/run", "/.old"}

func (sb *Spec) validate() error {
	switch {
	case sb.UID == 0 || sb.GID == 0:
		return fmt.Errorf("uid %d gid %d: the child may not be root", sb.UID, sb.GID)
	case !path.IsAbs(sb.Root):
		return fmt.Errorf("root %q is not an absolute path", sb.Root)
	case !path.IsAbs(sb.Path):
		return fmt.Errorf("path %q is not an absolute path", sb.Path)
	case sb.Dir != "" && !path.IsAbs(sb.Dir):
		return fmt.Errorf("dir %q is not an absolute path", sb.Dir)
	case sb.TmpBytes < 0 || sb.ShmBytes < 0:
		return fmt.Errorf("tmpfs sizes %d, %d", sb.TmpBytes, sb.ShmBytes)
	}
	for _, b := range sb.Binds {
		if err := b.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (b Bind) validate() error {
	if !path.IsAbs(b.Source) {
		return fmt.Errorf("bind source %q is not an absolute path", b.Source)
	}
	if !path.IsAbs(b.Target) || path.Clean(b.Target) != b.Target || b.Target == "/" {
		return fmt.Errorf("bind target %q: want a clean absolute path below /", b.Target)
	}
	for _, r := range reserved {
		if b.Target == r || strings.HasPrefix(b.Target, r+"/") {
			return fmt.Errorf("bind target %q is in the sandbox's own %s", b.Target, r)
		}
	}
	return nil
}

// withDefaults fills in the zero values' meanings.
func (sb Spec) withDefaults() Spec {
	if sb.Hostname == "" {
		sb.Hostname = "app"
	}
	if sb.TmpBytes == 0 {
		sb.TmpBytes = 64 << 20
	}
	if sb.ShmBytes == 0 {
		sb.ShmBytes = sb.TmpBytes
	}
	if sb.NoFile == 0 {
		sb.NoFile = 4096
	}
	if sb.Dir == "" {
		sb.Dir = "/"
	}
	return sb
}
