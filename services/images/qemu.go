package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// tool runs qemu-img on attacker data. qemu-img parses every byte of an upload, so a flaw in
// it is a flaw reachable by any tenant: each run is confined to what one parse needs.
type tool struct {
	qemuImg, prlimit string
	confine          bool   // ring 0 is root: drop to uid, in new PID, network and IPC namespaces
	uid              uint32 // uid and gid when confined
	timeout          time.Duration
	memory           int64
}

func newTool(cfg Config) (tool, error) {
	t := tool{uid: cfg.UID, timeout: cfg.ToolTimeout, memory: cfg.ToolMemory, confine: os.Geteuid() == 0}
	if t.uid == 0 {
		t.uid = DefaultUID
	}
	if t.timeout <= 0 {
		t.timeout = 10 * time.Minute
	}
	if t.memory <= 0 {
		t.memory = 1 << 30
	}
	var err error
	if t.qemuImg, err = lookPath(cfg.QemuImg, "qemu-img"); err != nil {
		return t, err
	}
	if t.prlimit, err = lookPath(cfg.Prlimit, "prlimit"); err != nil {
		return t, err
	}
	// Prove the confinement works here (namespaces allowed, the programs runnable as uid)
	// before the first upload depends on it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := t.run(ctx, invocation{args: []string{"--version"}})
	if err != nil {
		return t, fmt.Errorf("images: run qemu-img confined: %w", err)
	}
	if res.failed() {
		return t, fmt.Errorf("images: run qemu-img confined: %s", res.why())
	}
	cfg.Logger.Debug("qemu-img ready", "version", firstLine(string(res.stdout)), "confined", t.confine, "uid", t.uid)
	return t, nil
}

// invocation is one run of qemu-img.
type invocation struct {
	args  []string
	files []*os.File // the child's descriptors 3, 4, …: the only way it reaches a file of ours
	fsize int64      // the largest file it may write; 0 for runs that must write nothing
}

// result is how a run ended.
type result struct {
	stdout   []byte
	stderr   string
	code     int            // exit status; -1 if a signal ended it
	signal   syscall.Signal // the signal, if one did
	timedOut bool           // the run passed the tool's timeout and was killed
	tooMuch  bool           // it wrote more to stdout than any honest answer holds
}

// Output caps: qemu-img info lists snapshots, so an image can make it long, but not this
// long; stderr is only read for its first line.
const (
	maxStdout = 8 << 20
	maxStderr = 64 << 10
)

// run runs qemu-img with inv's arguments and files, confined: prlimit caps its address space,
// CPU time, file size and descriptors and forbids core dumps; as root it runs as t.uid with
// no supplementary groups, as the init of a new PID namespace (so whatever it forks dies
// with it) without a network; it has an empty environment, / as its directory and its own
// process group, killed at the deadline or if ring 0 dies. An error means it could not run,
// or ctx ended; how it ended otherwise is in the result.
func (t tool) run(ctx context.Context, inv invocation) (result, error) {
	rctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	secs := max(int64(t.timeout/time.Second), 1)
	args := []string{
		"--as=" + strconv.FormatInt(t.memory, 10),
		"--cpu=" + strconv.FormatInt(secs, 10),
		"--fsize=" + strconv.FormatInt(inv.fsize, 10),
		"--core=0", "--nofile=256", "--",
		t.qemuImg}
	cmd := exec.CommandContext(rctx, t.prlimit, append(args, inv.args...)...)
	cmd.Env = []string{"LC_ALL=C"}
	cmd.Dir = "/"
	cmd.ExtraFiles = inv.files
	stdout, stderr := &capped{max: maxStdout}, &capped{max: maxStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if t.confine {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: t.uid, Gid: t.uid, Groups: []uint32{}}
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	res := result{stdout: stdout.Bytes(), stderr: stderr.String(), tooMuch: stdout.over}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		ws, _ := ee.Sys().(syscall.WaitStatus)
		res.code = ws.ExitStatus()
		if ws.Signaled() {
			res.signal = ws.Signal()
		}
	case err != nil && rctx.Err() == nil:
		return res, err
	}
	res.timedOut = rctx.Err() != nil
	return res, nil
}

func (r result) failed() bool { return r.code != 0 || r.signal != 0 || r.timedOut || r.tooMuch }

// why says in one line how a run failed, from the uploader's side.
func (r result) why() string {
	switch {
	case r.timedOut:
		return "qemu-img took too long on it and was stopped"
	case r.signal == syscall.SIGXCPU || r.signal == syscall.SIGKILL:
		return "qemu-img was killed reading it: over its CPU time or memory"
	case r.signal == syscall.SIGXFSZ:
		return "converting it wrote more than its virtual size allows"
	case r.signal != 0:
		return fmt.Sprintf("qemu-img died reading it (%s): it is malformed or needs more memory than allowed", r.signal)
	case r.tooMuch:
		return "qemu-img's description of it is longer than any sane image's (too many snapshots?)"
	}
	if msg := r.message(); msg != "" {
		return msg
	}
	return fmt.Sprintf("qemu-img failed with exit status %d", r.code)
}

// message is the first line qemu-img wrote to stderr, without its name and with our
// descriptor paths named for what they are. It quotes attacker data: keep it short and
// printable.
func (r result) message() string {
	line := firstLine(r.stderr)
	line = strings.TrimPrefix(line, "qemu-img: ")
	line = strings.NewReplacer("'/dev/fd/3'", "the image", "/dev/fd/3", "the image", "/dev/fd/4", "the output").Replace(line)
	line = strings.Map(func(c rune) rune {
		if c < ' ' || c == 0x7f {
			return -1
		}
		return c
	}, line)
	return trunc(line, 200)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}

// capped is a buffer that keeps the first max bytes written to it and notes any excess.
type capped struct {
	bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); len(p) > room {
		c.over = true
		c.Buffer.Write(p[:max(room, 0)])
		return len(p), nil // keep draining: the run is judged once it ends
	}
	return c.Buffer.Write(p)
}
