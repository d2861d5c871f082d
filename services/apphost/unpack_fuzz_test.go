package apphost

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
)

// FuzzUnpack feeds unpackStream tars a tenant could send — references to files, paths that
// climb, odd types — and checks that nothing is ever written outside the directory it
// unpacks into, and that a reference is only ever filled from the file the app has.
func FuzzUnpack(f *testing.F) {
	seed := func(hs ...*tar.Header) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range hs {
			tw.WriteHeader(h)
			if h.Size > 0 {
				tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
			}
		}
		tw.Close()
		return b.Bytes()
	}
	f.Add(seed(&tar.Header{Name: "Procfile", Mode: 0o644, Size: 5, Typeflag: tar.TypeReg}))
	f.Add(seed(&tar.Header{Name: "d/", Mode: 0o755, Typeflag: tar.TypeDir},
		&tar.Header{Name: "d/bin", Mode: 0o755, Typeflag: tar.TypeReg, PAXRecords: map[string]string{refKey: "sha256-" + string(bytes.Repeat([]byte("a"), 64)), refSizeKey: "4"}}))
	f.Add(seed(&tar.Header{Name: "../escape", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}))
	f.Add(seed(&tar.Header{Name: "link", Linkname: "/etc/passwd", Typeflag: tar.TypeSymlink}))
	have := "sha256-" + string(bytes.Repeat([]byte("a"), 64))
	f.Fuzz(func(t *testing.T, raw []byte) {
		root := t.TempDir()
		dir, outside := filepath.Join(root, "stage"), filepath.Join(root, "app-file")
		os.Mkdir(dir, 0o700)
		os.WriteFile(outside, []byte("data"), 0o600)
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw)
		zw.Close()
		ref := func(d string) (string, bool) { return outside, d == have }
		n, _, entries, err := unpackStream(&gz, dir, ref)
		if err == nil && n != len(entries) {
			t.Fatalf("%d files, %d entries", n, len(entries))
		}
		left, _ := os.ReadDir(root)
		if len(left) != 2 {
			t.Fatalf("written outside the stage: %v", left)
		}
		if b, _ := os.ReadFile(outside); string(b) != "data" {
			t.Fatalf("the referenced file changed: %q", b)
		}
	})
}
