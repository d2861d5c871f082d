package sandbox

import (
	"fmt"
	"runtime"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// denied are the system calls a sandboxed child has no business making: they rebuild or
// leave the sandbox (namespaces, mounts, chroot), reach into other processes (ptrace and
// its relatives), or reach into the kernel (keyrings, eBPF, perf, modules, kexec, clocks,
// swap, the kernel log, io_uring, raw I/O ports, file handles that bypass paths). Most of
// them already need a capability the child lacks; the filter keeps it that way when the
// next kernel bug hands one out. They fail with EPERM.
var denied = []string{
	"unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
	"move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	"ptrace", "process_vm_readv", "process_vm_writev",
	"keyctl", "add_key", "request_key",
	"bpf", "perf_event_open", "userfaultfd",
	"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
	"swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"syslog", "quotactl", "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
}

// newNamespaces are the clone flags that make namespaces.
const newNamespaces = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

// policy is the main filter. It allows by default (a sandboxed app is ordinary software);
// clone may not make namespaces (the library's BitsSet matches when any bit of Value is set
// in the argument: the high and the low words are each tested with BPF's jset). clone3
// passes its flags in memory, out of a filter's sight, so it fails with ENOSYS: glibc and
// others then fall back to clone, whose flags the filter sees. EPERM would be taken as a
// real refusal and break thread creation.
func policy() seccomp.Policy {
	return seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{
			{
				Names: denied,
				NamesWithCondtions: []seccomp.NameWithConditions{{Name: "clone", Conditions: seccomp.ArgumentConditions{
					{Argument: 0, Operation: seccomp.BitsSet, Value: newNamespaces},
				}}},
				Action: seccomp.ActionErrno, // the library adds EPERM
			},
			// The library returns an Action as it is unless it is the bare ActionErrno.
			{Names: []string{"clone3"}, Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS)},
		},
	}
}

// archFilter closes a hole in the library's program: a system call made under another
// architecture's ABI than the native one — on amd64, the i386 ABI through int $0x80, which
// this kernel's IA32 emulation serves with i386 numbers (unshare is 310 there) — skips every
// rule and gets the default action, allow. This second filter fails every such call with
// ENOSYS, as if the kernel had no such ABI. (The kernel runs both filters and takes the
// stricter answer.) ENOSYS rather than killing the process: a native program never makes
// these calls, a 32-bit one fails cleanly at its first, and the refusal is visible to a probe.
// The x32 ABI shares the native arch value; the library refuses it by syscall number.
func archFilter(native uint32) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: native, SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW},
	}
}

// loadSeccomp sets no_new_privs (which an unprivileged seccomp filter needs) and loads both
// filters on every thread of the helper; the child inherits them.
func loadSeccomp() error {
	native, ok := nativeAuditArch[runtime.GOARCH]
	if !ok {
		return fmt.Errorf("not supported on %s", runtime.GOARCH)
	}
	p := policy()
	main, err := p.Assemble()
	if err != nil {
		return fmt.Errorf("assemble: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	for _, prog := range [][]bpf.Instruction{main, archFilter(native)} {
		if err := loadFilter(prog); err != nil {
			return err
		}
	}
	return nil
}

// nativeAuditArch is the seccomp_data.arch of the architectures the sandbox supports.
var nativeAuditArch = map[string]uint32{"amd64": unix.AUDIT_ARCH_X86_64}

func loadFilter(prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("assemble: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	// TSYNC: every thread of the helper, not only this one, and no_new_privs with it.
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC,
		uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(filter)
	switch {
	case errno != 0:
		return fmt.Errorf("load filter: %w", errno)
	case r != 0:
		return fmt.Errorf("load filter: thread %d cannot synchronize", r)
	}
	return nil
}
