package vmhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"enjin"
)

var digestRE = regexp.MustCompile(`^sha256-[0-9a-f]{64}$`)

// cached returns the paths of the image's files on this node — fetched from ring 0 the first
// time, and kept only once their bytes hash to the digests the request names. Cached files
// are 0644 root's: QEMU reads them as the base of every overlay and never writes them.
func (h *Host) cached(ctx context.Context, img enjin.VMImage) (disk, kernel, initrd string, err error) {
	h.images.Lock()
	defer h.images.Unlock()
	if !digestRE.MatchString(img.Digest) {
		return "", "", "", fmt.Errorf("vmhost: image digest %q", img.Digest)
	}
	switch img.Kind {
	case "disk":
		disk, err = h.fetch(ctx, img.Digest, "qcow2", img.Digest)
		return disk, "", "", err
	case "kernel":
		if !digestRE.MatchString(img.Kernel) || !digestRE.MatchString(img.Initrd) {
			return "", "", "", fmt.Errorf("vmhost: kernel image %s: its parts' digests %q, %q", img.Digest, img.Kernel, img.Initrd)
		}
		pair := sha256.Sum256([]byte(img.Kernel + "\n" + img.Initrd + "\n"))
		if "sha256-"+hex.EncodeToString(pair[:]) != img.Digest {
			return "", "", "", fmt.Errorf("vmhost: kernel image %s is not the pair %s, %s", img.Digest, img.Kernel, img.Initrd)
		}
		if kernel, err = h.fetch(ctx, img.Digest, "kernel", img.Kernel); err != nil {
			return "", "", "", err
		}
		initrd, err = h.fetch(ctx, img.Digest, "initrd", img.Initrd)
		return "", kernel, initrd, err
	}
	return "", "", "", fmt.Errorf("vmhost: image kind %q", img.Kind)
}

// fetch makes sure images/<want>.<part> holds part of image digest, whose bytes hash to want.
func (h *Host) fetch(ctx context.Context, digest, part, want string) (string, error) {
	path := filepath.Join(h.cfg.Dir, "images", want+"."+part)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	tmp, err := os.CreateTemp(filepath.Join(h.cfg.Dir, "images"), "fetch-")
	if err != nil {
		return "", fmt.Errorf("vmhost: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := h.cfg.Fetch(ctx, digest, part, tmp); err != nil {
		return "", fmt.Errorf("vmhost: fetch %s of image %s: %w", part, digest, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("vmhost: %w", err)
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, tmp); err != nil {
		return "", fmt.Errorf("vmhost: %w", err)
	}
	if got := "sha256-" + hex.EncodeToString(sum.Sum(nil)); got != want {
		return "", fmt.Errorf("vmhost: %s of image %s hashes to %s, not %s: refused", part, digest, got, want)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", fmt.Errorf("vmhost: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("vmhost: %w", err)
	}
	h.log.Info("image cached", "image", digest, "part", part)
	return path, nil
}
