package images

import (
	"bytes"
	"encoding/binary"
	"io"
)

// An image format's signature, as qemu's probes look for it.
type signature struct {
	name  string
	off   int64 // from the start; negative: from the end
	magic []byte
}

// signatures are the headers of every image format qemu-img knows besides raw. A raw upload
// that starts with one is refused: stored as raw it would be the guest's data, but anything
// that ever probed its format would open it as that format instead — qcow2 with its backing
// file included.
var signatures = []signature{
	{"qcow2", 0, []byte("QFI\xfb")}, // qcow and qcow2
	{"QED", 0, []byte("QED\x00")},
	{"VMDK", 0, []byte("KDMV")},
	{"VMDK", 0, []byte("COWD")},
	{"VMDK descriptor", 0, []byte("# Disk DescriptorFile")},
	{"VDI", 0x40, binary.LittleEndian.AppendUint32(nil, 0xbeda107f)},
	{"VHDX", 0, []byte("vhdxfile")},
	{"VHD", 0, []byte("conectix")},
	{"LUKS", 0, []byte("LUKS\xba\xbe")},
	{"Parallels", 0, []byte("WithoutFreeSpace")},
	{"Parallels", 0, []byte("WithouFreSpacExt")},
	{"Bochs", 0, []byte("Bochs Virtual HD Image")},
	{"cloop", 0, []byte("#!/bin/sh\n#V2.0 Format\n")},
	{"DMG", -512, []byte("koly")},
}

// sniff names the image format whose header r (of size bytes) starts with, or returns "".
func sniff(r io.ReaderAt, size int64) string {
	for _, s := range signatures {
		off := s.off
		if off < 0 {
			off += size
		}
		if off < 0 || off+int64(len(s.magic)) > size {
			continue
		}
		b := make([]byte, len(s.magic))
		if _, err := r.ReadAt(b, off); err == nil && bytes.Equal(b, s.magic) {
			return s.name
		}
	}
	return ""
}

// isBzImage reports whether a kernel of size bytes has the boot protocol's header: the boot
// flag 0xAA55 at 0x1FE and "HdrS" at 0x202.
func isBzImage(r io.ReaderAt, size int64) bool {
	if size < 0x206 {
		return false
	}
	var b [8]byte
	if _, err := r.ReadAt(b[:], 0x1fe); err != nil {
		return false
	}
	return b[0] == 0x55 && b[1] == 0xaa && string(b[4:8]) == "HdrS"
}

// initrdKinds are the starts of an initramfs the kernel unpacks: compressed, or a newc cpio
// archive (which may carry compressed ones after it).
var initrdKinds = []signature{
	{"gzip", 0, []byte{0x1f, 0x8b}},
	{"zstd", 0, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{"xz", 0, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{"cpio", 0, []byte("070701")},
	{"cpio", 0, []byte("070702")},
}

// initrdKind names what an initramfs of size bytes is, or returns "".
func initrdKind(r io.ReaderAt, size int64) string {
	for _, s := range initrdKinds {
		if int64(len(s.magic)) > size {
			continue
		}
		b := make([]byte, len(s.magic))
		if _, err := r.ReadAt(b, 0); err == nil && bytes.Equal(b, s.magic) {
			return s.name
		}
	}
	return ""
}
