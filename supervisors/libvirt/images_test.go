package libvirt_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"enjin/supervisors/libvirt"
)

// imageInfo is what qemu-img reports of an image, read with its format given.
type imageInfo struct {
	Format        string `json:"format"`
	VirtualSize   int64  `json:"virtual-size"`
	Backing       string `json:"backing-filename"`
	BackingFormat string `json:"backing-filename-format"`
}

func info(t *testing.T, path string) imageInfo {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "-f", "qcow2", "--output=json", path).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", path, err)
	}
	var i imageInfo
	if err := json.Unmarshal(out, &i); err != nil {
		t.Fatal(err)
	}
	return i
}

func TestOverlay(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		sizeGiB int
		want    int64
	}{
		{"base's size", 0, 1 << 20},
		{"grown", 2, 2 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, unique("ov")+".qcow2")
			if err := libvirt.Overlay(t.Context(), base(t), p, tc.sizeGiB); err != nil {
				t.Fatal(err)
			}
			got := info(t, p)
			want := imageInfo{Format: "qcow2", VirtualSize: tc.want, Backing: base(t), BackingFormat: "qcow2"}
			if got != want {
				t.Errorf("got %+v want %+v", got, want)
			}
			if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("mode: got %v, %v want 0600", st.Mode(), err)
			}
			if err := libvirt.Overlay(t.Context(), base(t), p, 0); !errors.Is(err, fs.ErrExist) {
				t.Errorf("overlay over an existing file: got %v want ErrExist", err)
			}
		})
	}
	for name, b := range map[string]string{"relative base": "base.qcow2", "missing base": "/nonexistent/base.qcow2"} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, unique("bad")+".qcow2")
			if err := libvirt.Overlay(t.Context(), b, p, 0); err == nil {
				t.Fatal("got no error")
			}
			if _, err := os.Stat(p); err == nil {
				t.Error("a failed overlay left its file")
			}
		})
	}
}

func TestCreateVolume(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vol.qcow2")
	if err := libvirt.CreateVolume(t.Context(), p, 3); err != nil {
		t.Fatal(err)
	}
	if got := info(t, p); got != (imageInfo{Format: "qcow2", VirtualSize: 3 << 30}) {
		t.Errorf("got %+v want an empty 3 GiB qcow2", got)
	}
	if err := libvirt.CreateVolume(t.Context(), p, 1); !errors.Is(err, fs.ErrExist) {
		t.Errorf("volume over an existing file: got %v want ErrExist", err)
	}
	if err := libvirt.CreateVolume(t.Context(), p+"2", 0); err == nil {
		t.Error("a volume of 0 GiB: got no error")
	}
}

func TestHasKVM(t *testing.T) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err == nil {
		f.Close()
	}
	// Where /dev/kvm does not open, it is false; where it does, the ioctls decide.
	if got := libvirt.HasKVM(); err != nil && got {
		t.Fatalf("HasKVM: got true with /dev/kvm unopenable (%v)", err)
	}
	t.Logf("HasKVM: %v (/dev/kvm: %v)", libvirt.HasKVM(), err)
}
