package sandbox

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The filters run here in x/net/bpf's interpreter on hand-made seccomp_data, so that every
// rule — the i386 one above all, which this machine's kernel gives no way to reach — is
// checked whatever the kernel under the test offers.

// seccompData lays out struct seccomp_data as the kernel's loads see it. The interpreter
// loads 32-bit words big-endian; writing each word big-endian makes it see the native
// values, and 64-bit arguments are two words, low first on little-endian amd64.
func seccompData(arch, nr uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[16+8*i+4:], uint32(a>>32))
	}
	return b
}

// verdict runs both filters as the kernel would and keeps the strictest answer: for the
// actions used here, the lowest action value (ERRNO 0x0005xxxx before ALLOW 0x7fff0000).
func verdict(t *testing.T, data []byte) uint32 {
	t.Helper()
	p := policy()
	main, err := p.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	out := uint32(unix.SECCOMP_RET_ALLOW)
	for _, prog := range [][]bpf.Instruction{main, archFilter(unix.AUDIT_ARCH_X86_64)} {
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		r, err := vm.Run(data)
		if err != nil {
			t.Fatal(err)
		}
		if uint32(r)&unix.SECCOMP_RET_ACTION_FULL < out&unix.SECCOMP_RET_ACTION_FULL {
			out = uint32(r)
		}
	}
	return out
}

func TestSeccompPolicy(t *testing.T) {
	const (
		amd64 = unix.AUDIT_ARCH_X86_64
		i386  = unix.AUDIT_ARCH_I386
		allow = unix.SECCOMP_RET_ALLOW
		eperm = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		enosy = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	)
	sigchld := uint64(unix.SIGCHLD)
	thread := uint64(unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD |
		unix.CLONE_SYSVSEM | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID)
	for _, c := range []struct {
		name     string
		arch, nr uint32
		args     []uint64
		want     uint32
	}{
		{"read", amd64, unix.SYS_READ, nil, allow},
		{"getpid", amd64, unix.SYS_GETPID, nil, allow},
		{"unshare", amd64, unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWUSER}, eperm},
		{"setns", amd64, unix.SYS_SETNS, nil, eperm},
		{"mount", amd64, unix.SYS_MOUNT, nil, eperm},
		{"fsopen", amd64, unix.SYS_FSOPEN, nil, eperm},
		{"ptrace", amd64, unix.SYS_PTRACE, nil, eperm},
		{"keyctl", amd64, unix.SYS_KEYCTL, nil, eperm},
		{"bpf", amd64, unix.SYS_BPF, nil, eperm},
		{"io_uring_setup", amd64, unix.SYS_IO_URING_SETUP, nil, eperm},
		{"iopl", amd64, unix.SYS_IOPL, nil, eperm},
		{"fork-like clone", amd64, unix.SYS_CLONE, []uint64{sigchld}, allow},
		{"thread clone", amd64, unix.SYS_CLONE, []uint64{thread}, allow},
		{"vfork clone", amd64, unix.SYS_CLONE, []uint64{unix.CLONE_VM | unix.CLONE_VFORK | sigchld}, allow},
		{"clone NEWUSER", amd64, unix.SYS_CLONE, []uint64{unix.CLONE_NEWUSER | sigchld}, eperm},
		{"clone NEWNET among others", amd64, unix.SYS_CLONE, []uint64{thread | unix.CLONE_NEWNET}, eperm},
		{"clone NEWTIME", amd64, unix.SYS_CLONE, []uint64{unix.CLONE_NEWTIME}, eperm},
		{"clone NEWCGROUP, high bits set", amd64, unix.SYS_CLONE, []uint64{1<<40 | unix.CLONE_NEWCGROUP}, eperm},
		{"clone3", amd64, unix.SYS_CLONE3, nil, enosy},
		{"x32 getpid", amd64, 0x40000000 | unix.SYS_GETPID, nil, enosy},
		{"i386 getpid", i386, 20, nil, enosy},
		{"i386 unshare", i386, 310, []uint64{unix.CLONE_NEWUSER}, enosy},
		{"i386 read", i386, 3, nil, enosy},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := verdict(t, seccompData(c.arch, c.nr, c.args...)); got != c.want {
				t.Errorf("got %#x want %#x", got, c.want)
			}
		})
	}
}

// TestLibraryLetsForeignArchitecturesThrough shows the hole archFilter closes: on its own
// the library's program allows an i386 unshare.
func TestLibraryLetsForeignArchitecturesThrough(t *testing.T) {
	p := policy()
	main, err := p.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(main)
	if err != nil {
		t.Fatal(err)
	}
	r, err := vm.Run(seccompData(unix.AUDIT_ARCH_I386, 310, unix.CLONE_NEWUSER))
	if err != nil || uint32(r) != unix.SECCOMP_RET_ALLOW {
		t.Fatalf("library alone on i386 unshare: got %#x %v, want allow (has the library closed the hole?)", r, err)
	}
	if n := len(archFilter(unix.AUDIT_ARCH_X86_64)); n != 4 {
		t.Errorf("arch filter has %d instructions, want 4", n)
	}
}
