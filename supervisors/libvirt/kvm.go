package libvirt

import (
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// KVM's ioctls (linux/kvm.h) and the API version every kernel since 2.6.22 answers.
const (
	kvmGetAPIVersion = 0xAE00
	kvmCreateVM      = 0xAE01
	kvmAPIVersion    = 12
)

// QEMUUser is the user libvirt runs QEMU as (libvirt's Debian default; deploy/libvirt.sh
// makes it).
const QEMUUser = "libvirt-qemu"

// HasKVM reports whether this host can accelerate guests: /dev/kvm opens, answers KVM's API
// version, and makes a VM — and QEMUUser, who opens it for the guest, may read and write it
// (where no udev ran, it may be root's alone, and a start would fail). Set Domain.KVM from
// it; without it QEMU emulates the CPU (TCG), which works anywhere, many times slower.
func HasKVM() bool {
	return kvmUsableBy("/dev/kvm", QEMUUser) && kvmWorks()
}

// kvmUsableBy reports whether user name may open the file at path read-write, by its owner,
// group and mode bits.
func kvmUsableBy(path, name string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	u, err := user.Lookup(name)
	if err != nil {
		return false
	}
	mode := fi.Mode().Perm()
	switch {
	case u.Uid == "0":
		return true
	case u.Uid == strconv.FormatUint(uint64(st.Uid), 10):
		return mode&0o600 == 0o600
	}
	if groups, err := u.GroupIds(); err == nil && slices.Contains(groups, strconv.FormatUint(uint64(st.Gid), 10)) {
		return mode&0o060 == 0o060
	}
	return mode&0o006 == 0o006
}

// kvmWorks reports whether /dev/kvm opens here and makes a VM.
func kvmWorks() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if v, err := unix.IoctlRetInt(int(f.Fd()), kvmGetAPIVersion); err != nil || v != kvmAPIVersion {
		return false
	}
	vm, err := unix.IoctlRetInt(int(f.Fd()), kvmCreateVM)
	if err != nil {
		return false
	}
	unix.Close(vm)
	return true
}
