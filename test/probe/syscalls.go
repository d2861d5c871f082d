package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Probes of system calls the sandbox's seccomp filter refuses. Most would fail anyway for
// an unprivileged process; those that would not (user namespaces, keyrings, userfaultfd,
// io_uring, clone3, the i386 ABI) show that the filter is there.

func init() {
	refused := map[string]func() error{
		"unshare-net":     func() error { return onDoomedThread(func() error { return unix.Unshare(unix.CLONE_NEWNET) }) },
		"setns":           setns,
		"mount":           mount,
		"mount-new-api":   fsopen,
		"ptrace":          ptrace,
		"keyctl":          func() error { _, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false); return err },
		"bpf":             bpfMap,
		"perf_event_open": perfEventOpen,
		"userfaultfd":     func() error { return fdSyscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|1 /* UFFD_USER_MODE_ONLY */, 0) },
		"init_module":     func() error { return unix.InitModule([]byte{0}, "") },
		"kexec_load":      func() error { return errnoOf(unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0)) },
		"io_uring_setup":  ioUringSetup,
		"clone-newuser":   cloneNewUser,
	}
	for name, try := range refused {
		probes[name] = func(string) (bool, string) {
			err := try()
			return err != nil, errString(err)
		}
	}
	// Go programs are multithreaded, so the kernel itself refuses this one with EINVAL;
	// only the filter's EPERM shows the filter.
	probes["unshare-user"] = wantErrno(func() error {
		return onDoomedThread(func() error { return unix.Unshare(unix.CLONE_NEWUSER) })
	}, unix.EPERM)
	// A size of 0 makes the kernel answer EINVAL before doing anything; the filter ENOSYS.
	probes["clone3"] = wantErrno(func() error { return errnoOf(unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)) }, unix.ENOSYS)
	probes["int80-unshare"] = func(string) (bool, string) {
		// i386 unshare is 310; the x86-64 filter's numbers mean nothing under that ABI.
		r, detail := int80Child(310, unix.CLONE_NEWUSER)
		return r == -int32(unix.ENOSYS) || r == -int32(unix.EPERM), detail
	}
	probes["int80-getpid"] = func(string) (bool, string) {
		r, detail := int80Child(20, 0) // i386 getpid: succeeds unless the whole ABI is closed
		return r == -int32(unix.ENOSYS), detail
	}
}

func wantErrno(try func() error, want unix.Errno) probe {
	return func(string) (bool, string) {
		err := try()
		return errors.Is(err, want), errString(err)
	}
}

func errString(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		return fmt.Sprintf("%s (%s)", err, unix.ErrnoName(e))
	}
	if err == nil {
		return "succeeded"
	}
	return err.Error()
}

// int80Child makes an i386 system call in a child, which says "fault" if the instruction
// faults: where the kernel offers no i386 ABI to user space (no int $0x80 gate, as in some
// paravirtualized guests). That closes the ABI as surely as a filter, so it counts as
// refused, like -ENOSYS.
func int80Child(trap, a1 uint32) (int32, string) {
	out, err := exec.Command("/proc/self/exe", "int80", strconv.Itoa(int(trap)), strconv.Itoa(int(a1))).Output()
	res := strings.TrimSpace(string(out))
	if res == "fault" {
		return -int32(unix.ENOSYS), "int $0x80 faults (SIGSEGV): this kernel offers no i386 ABI to user space"
	}
	r, perr := strconv.Atoi(res)
	if err != nil || perr != nil {
		return 0, fmt.Sprintf("int80 child: %v %q", err, out)
	}
	return int32(r), int80String(int32(r))
}

func int80String(r int32) string {
	if r < 0 && r > -4096 {
		return fmt.Sprintf("-%s (%s)", unix.ErrnoName(unix.Errno(-r)), unix.Errno(-r))
	}
	return fmt.Sprintf("returned %d", r)
}

func errnoOf(r, _ uintptr, e unix.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

// fdSyscall makes a system call that returns a file descriptor, and closes it.
func fdSyscall(trap, a1, a2 uintptr) error {
	fd, _, e := unix.Syscall(trap, a1, a2, 0)
	if e != 0 {
		return e
	}
	unix.Close(int(fd))
	return nil
}

// onDoomedThread runs f on a thread of its own that is thrown away afterwards, so that a
// namespace it might enter stays out of the rest of the program.
func onDoomedThread(f func() error) error {
	c := make(chan error)
	go func() { // ends at once, taking its locked thread with it
		runtime.LockOSThread()
		c <- f()
	}()
	return <-c
}

func setns() error {
	fd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	return onDoomedThread(func() error { return unix.Setns(fd, unix.CLONE_NEWNET) })
}

func mount() error {
	dir, err := os.MkdirTemp("", "probe-mount-")
	if err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	defer os.Remove(dir)
	if err := unix.Mount("probe", dir, "tmpfs", 0, ""); err != nil {
		return err
	}
	unix.Unmount(dir, unix.MNT_DETACH)
	return nil
}

func fsopen() error {
	fd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

func ptrace() error {
	return onDoomedThread(func() error {
		if err := unix.PtraceAttach(1); err != nil {
			return err
		}
		unix.PtraceDetach(1)
		return nil
	})
}

func bpfMap() error {
	attr := struct{ typ, keySize, valueSize, maxEntries uint32 }{2 /* array */, 4, 4, 1}
	return fdSyscall(unix.SYS_BPF, 0 /* BPF_MAP_CREATE */, uintptr(unsafe.Pointer(&attr)))
}

func perfEventOpen() error {
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK,
		Bits: unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv}
	attr.Size = uint32(unsafe.Sizeof(attr))
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

func ioUringSetup() error {
	var params [120]byte // struct io_uring_params
	return fdSyscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params)))
}

// cloneNewUser starts a child in a new user namespace, the way a Go program must (it
// cannot unshare one: it has threads).
func cloneNewUser() error {
	cmd := exec.Command("/proc/self/exe", "true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}
	return cmd.Run()
}
