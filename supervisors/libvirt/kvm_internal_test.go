package libvirt

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// QEMU's user may use /dev/kvm only as its mode bits say: a node that is root's alone (as
// where no udev ran) is not for it, one open to all or to its group is.
func TestKVMUsableBy(t *testing.T) {
	u, err := user.Lookup(QEMUUser)
	if err != nil {
		t.Fatalf("%s: %v (deploy/libvirt.sh makes it)", QEMUUser, err)
	}
	gid, _ := strconv.Atoi(u.Gid)
	p := filepath.Join(t.TempDir(), "kvm")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mode   os.FileMode
		group  int
		qemu   bool
		reason string
	}{
		{0o600, 0, false, "root's alone"},
		{0o660, 0, false, "root's group's"},
		{0o660, gid, true, "its group's"},
		{0o640, gid, false, "its group may only read"},
		{0o666, 0, true, "everyone's"},
	} {
		if err := os.Chown(p, 0, c.group); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, c.mode); err != nil {
			t.Fatal(err)
		}
		if got := kvmUsableBy(p, QEMUUser); got != c.qemu {
			t.Errorf("%s (%o, gid %d): usable by %s: %v, want %v", c.reason, c.mode, c.group, QEMUUser, got, c.qemu)
		}
		if !kvmUsableBy(p, "root") {
			t.Errorf("%s: not usable by root", c.reason)
		}
	}
	if kvmUsableBy(p, "no-such-user-enjin") || kvmUsableBy(filepath.Join(t.TempDir(), "none"), QEMUUser) {
		t.Error("usable by a user who does not exist, or with no file")
	}
}
