package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
)

// PutKernel receives a kernel and its initramfs, in that order (each read to its end before
// the next is touched, so both may be parts of one streamed request), and stores them under
// one digest: the sha256 of the two parts' digests, a line each ("sha256-…\n" twice), so the
// same pair is stored once. The kernel must be at most lim.MaxKernel bytes and a bzImage (the
// boot protocol's HdrS header); the initramfs at most lim.MaxInitrd bytes, starting as gzip,
// zstd, xz or a newc cpio archive. Nothing parses either beyond those few bytes: the
// hypervisor hands them to the guest, where they run as the guest.
//
// record is as for Put. Errors reading the bodies wrap ErrBody.
func (s *Store) PutKernel(ctx context.Context, kernel, initrd io.Reader, lim Limits, record func(Image) error) (Image, error) {
	lim = lim.WithDefaults()
	dir, err := s.stage()
	if err != nil {
		return Image{}, err
	}
	defer os.RemoveAll(dir)
	kf, ksize, kdigest, err := receive(dir, "kernel", kernel, lim.MaxKernel, sha256.New())
	if err != nil {
		return Image{}, err
	}
	defer kf.Close()
	switch {
	case ksize == 0:
		return Image{}, refused("the kernel is empty")
	case !isBzImage(kf, ksize):
		return Image{}, refused("the kernel is not a bzImage (no boot protocol header, HdrS at 0x202)")
	}
	if err := ctx.Err(); err != nil {
		return Image{}, err
	}
	inf, isize, idigest, err := receive(dir, "initrd", initrd, lim.MaxInitrd, sha256.New())
	if err != nil {
		return Image{}, err
	}
	defer inf.Close()
	switch {
	case isize == 0:
		return Image{}, refused("the initramfs is empty")
	case initrdKind(inf, isize) == "":
		return Image{}, refused("the initramfs is neither gzip, zstd, xz nor a cpio archive")
	}
	for _, f := range []*os.File{kf, inf} {
		if err := f.Chmod(0o600); err != nil {
			return Image{}, err
		}
	}
	pair := sha256.Sum256([]byte(kdigest + "\n" + idigest + "\n"))
	img := Image{Kind: Kernel, Digest: "sha256-" + hex.EncodeToString(pair[:]), Size: ksize + isize,
		Kernel: Blob{kdigest, ksize}, Initrd: Blob{idigest, isize}}
	if err := s.keep(img, map[Part]string{PartKernel: kf.Name(), PartInitrd: inf.Name()}, record); err != nil {
		return Image{}, err
	}
	return img, nil
}
