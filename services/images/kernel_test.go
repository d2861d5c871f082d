package images_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"enjin/services/images"
)

// bzImage is the start of a kernel as the boot protocol lays it out: boot flag and HdrS.
func bzImage(n int) []byte {
	b := bytes.Repeat([]byte{0x90}, n)
	b[0x1fe], b[0x1ff] = 0x55, 0xaa
	copy(b[0x202:], "HdrS")
	return b
}

// initramfs is a gzipped newc cpio archive's start.
func initramfs(t *testing.T) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	io.WriteString(zw, "070701"+strings.Repeat("0", 104)+"TRAILER!!!\x00")
	zw.Close()
	return buf.Bytes()
}

// TestPutKernel: a bzImage and an initramfs are stored under one digest, stable across
// uploads; garbage, empty and oversize parts are refused, naming the part.
func TestPutKernel(t *testing.T) {
	s := newStore(t)
	kernel, initrd := bzImage(8192), initramfs(t)
	img, err := s.PutKernel(t.Context(), bytes.NewReader(kernel), bytes.NewReader(initrd), limits, nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Kind != images.Kernel || !images.ValidDigest(img.Digest) || img.Size != int64(len(kernel)+len(initrd)) ||
		img.Kernel.Size != 8192 || img.Initrd.Size != int64(len(initrd)) || img.Kernel.Digest == img.Digest {
		t.Fatalf("stored %+v", img)
	}
	for part, want := range map[images.Part][]byte{images.PartKernel: kernel, images.PartInitrd: initrd} {
		got, err := os.ReadFile(s.Path(img.Digest, part))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("stored %s: %d bytes, %v; want the upload", part, len(got), err)
		}
	}
	again, err := s.PutKernel(t.Context(), bytes.NewReader(kernel), bytes.NewReader(initrd), limits, nil)
	if err != nil || again.Digest != img.Digest {
		t.Fatalf("again: %+v, %v; want digest %s", again, err, img.Digest)
	}
	cpio := []byte("070701" + strings.Repeat("0", 200))
	if _, err := s.PutKernel(t.Context(), bytes.NewReader(kernel), bytes.NewReader(cpio), limits, nil); err != nil {
		t.Fatalf("an uncompressed cpio initramfs: %v", err)
	}

	for _, tc := range []struct {
		name           string
		kernel, initrd []byte
		reason         string
		tooLarge       bool
	}{
		{"garbage kernel", bytes.Repeat([]byte("MZ garbage"), 1000), initrd, "the kernel is not a bzImage", false},
		{"HdrS without boot flag", func() []byte { b := bzImage(4096); b[0x1fe] = 0; return b }(), initrd, "the kernel is not a bzImage", false},
		{"short kernel", bzImage(8192)[:0x204], initrd, "the kernel is not a bzImage", false},
		{"empty kernel", nil, initrd, "the kernel is empty", false},
		{"kernel over the limit", bzImage(1<<20 + 1), initrd, "the kernel is larger than the limit of 1048576 bytes", true},
		{"garbage initrd", kernel, []byte("#!/bin/sh\nrm -rf /\n"), "the initramfs is neither gzip, zstd, xz nor a cpio archive", false},
		{"ELF initrd", kernel, []byte("\x7fELF\x02\x01\x01"), "the initramfs is neither", false},
		{"empty initrd", kernel, nil, "the initramfs is empty", false},
		{"initrd over the limit", kernel, append([]byte{0x1f, 0x8b}, make([]byte, 4<<20)...), "the initramfs is larger than the limit of 4194304 bytes", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.PutKernel(t.Context(), bytes.NewReader(tc.kernel), bytes.NewReader(tc.initrd), limits, nil)
			re, ok := errors.AsType[*images.RefusedError](err)
			if !ok || !strings.Contains(re.Reason, tc.reason) || re.TooLarge != tc.tooLarge {
				t.Fatalf("got %v; want refused for %q (too large %v)", err, tc.reason, tc.tooLarge)
			}
		})
	}
}

// FuzzSniffs runs the magic checks on arbitrary bytes: they never panic, and whatever the
// bytes, a raw upload starting with a qcow2 header is refused before qemu-img sees it.
func FuzzSniffs(f *testing.F) {
	f.Add([]byte("QFI\xfb\x00\x00\x00\x03"), int64(4096))
	f.Add(bzImage(1024), int64(1024))
	f.Add([]byte{0x1f, 0x8b, 8}, int64(3))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		got := images.Sniffs(b, size)
		if bytes.HasPrefix(b, []byte("QFI\xfb")) && size >= 4 && got == "" {
			t.Fatalf("a qcow2 header (%d bytes, size %d) sniffed as nothing", len(b), size)
		}
	})
}

// FuzzInfo reads arbitrary answers as qemu-img info's: never a panic, and any answer with a
// key about a backing file, or a data file, is refused.
func FuzzInfo(f *testing.F) {
	f.Add([]byte(`{"format":"qcow2","virtual-size":65536,"backing-filename":"/etc/shadow"}`))
	f.Add([]byte(`{"format":"qcow2","virtual-size":65536,"format-specific":{"type":"qcow2","data":{"data-file":"/x"}}}`))
	f.Add([]byte(`{"format":"raw","virtual-size":512}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		problem, err := images.InfoProblem(b, images.QCOW2, images.Limits{})
		if err != nil {
			return
		}
		var top map[string]json.RawMessage
		json.Unmarshal(b, &top)
		for k := range top {
			if strings.Contains(k, "backing") && problem == "" {
				t.Fatalf("%s: key %q accepted", b, k)
			}
		}
		if strings.Contains(string(b), "data-file") && strings.Contains(string(top["format-specific"]), "data-file") && problem == "" {
			var fs struct{ Data map[string]json.RawMessage }
			if json.Unmarshal(top["format-specific"], &fs) == nil && fs.Data["data-file"] != nil {
				t.Fatalf("%s: data file accepted", b)
			}
		}
	})
}
