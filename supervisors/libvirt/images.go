package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// Overlay creates path, a qcow2 image that reads from base (a qcow2 image, by contract: its
// format is given to qemu-img, never probed) and writes only to itself. sizeGiB above 0 sets
// its virtual size (at least the base's); 0 keeps the base's. It will not replace a file.
// Give the Domain's Disk Base: base and Owned: true, so the base stays read-only to QEMU and
// Undefine deletes the overlay.
func Overlay(ctx context.Context, base, path string, sizeGiB int) error {
	if !filepath.IsAbs(base) {
		// qemu-img would record it relative to the overlay's directory.
		return fmt.Errorf("overlay %s: base %q is not absolute", path, base)
	}
	if _, err := os.Stat(base); err != nil {
		return fmt.Errorf("overlay %s: base: %w", path, err)
	}
	args := []string{"create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", path}
	if sizeGiB > 0 {
		args = append(args, strconv.Itoa(sizeGiB)+"G")
	}
	return qemuImg(ctx, "overlay", path, args)
}

// CreateVolume creates path, an empty qcow2 image of sizeGiB. It will not replace a file.
func CreateVolume(ctx context.Context, path string, sizeGiB int) error {
	if sizeGiB <= 0 {
		return fmt.Errorf("volume %s: size %d GiB: want above 0", path, sizeGiB)
	}
	return qemuImg(ctx, "volume", path, []string{"create", "-q", "-f", "qcow2", path, strconv.Itoa(sizeGiB) + "G"})
}

// qemuImg runs qemu-img to create path, which must not exist, and leaves it readable only
// by root: libvirt hands it to QEMU's user while a domain uses it.
func qemuImg(ctx context.Context, what, path string, args []string) error {
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %s: %w", what, path, orElse(err, fs.ErrExist))
	}
	if out, err := exec.CommandContext(ctx, "qemu-img", args...).CombinedOutput(); err != nil {
		os.Remove(path)
		return fmt.Errorf("%s %s: qemu-img: %w: %s", what, path, err, out)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	return nil
}
