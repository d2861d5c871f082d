package libvirt

import (
	"os"

	"golang.org/x/sys/unix"
)

// KVM's ioctls (linux/kvm.h) and the API version every kernel since 2.6.22 answers.
const (
	kvmGetAPIVersion = 0xAE00
	kvmCreateVM      = 0xAE01
	kvmAPIVersion    = 12
)

// HasKVM reports whether this host can accelerate guests: /dev/kvm opens, answers KVM's API
// version, and makes a VM. Set Domain.KVM from it; without it QEMU emulates the CPU (TCG),
// which works anywhere, many times slower.
func HasKVM() bool {
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
