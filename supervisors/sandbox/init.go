package sandbox

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwarded are the signals the init passes on to every process of the sandbox. The kernel
// delivers a PID namespace's init only the signals it handles, so a child run as init itself
// would ignore SIGTERM; and nobody would reap its orphans.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// runInit starts the child and stays as the PID namespace's init: it forwards signals,
// reaps every process that exits, and exits with the child's status when the child exits
// (the kernel then kills whatever the child left behind). It returns only if the child
// cannot be started.
func runInit(sb *Spec) error {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, append([]os.Signal{syscall.SIGCHLD}, forwarded...)...)
	null, err := os.Open("/dev/null")
	if err != nil {
		return fmt.Errorf("sandbox: stdin: %w", err)
	}
	// Its own process group, so that a signal to the helper's group (the usual way to stop
	// it) reaches the child once, through the init, not twice.
	pid, err := syscall.ForkExec(sb.Path, append([]string{sb.Path}, sb.Args...), &syscall.ProcAttr{
		Dir: sb.Dir, Env: sb.Env, Files: []uintptr{null.Fd(), 1, 2}, Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	null.Close()
	if err != nil {
		return fmt.Errorf("sandbox: exec %s: %w", sb.Path, err)
	}
	*sb = Spec{} // the child's environment is the child's alone
	debug.FreeOSMemory()
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			_ = unix.Kill(-1, sig.(syscall.Signal)) // everyone in the namespace but us
		}
		// Reap after every signal, not only SIGCHLD: os/signal drops what does not fit in
		// the channel, and a child may send us signals by the thousand.
		if status, done := reap(pid); done {
			os.Exit(status)
		}
	}
	panic("unreachable")
}

// reap collects every child that has exited; done says whether the main child was among
// them, and status is then what the helper should exit with.
func reap(main int) (status int, done bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return status, done
		}
		if pid != main {
			continue
		}
		done = true
		switch {
		case ws.Exited():
			status = ws.ExitStatus()
		case ws.Signaled():
			status = 128 + int(ws.Signal())
		}
	}
}
