package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeState writes src's state files as a backup stream (no inventory, uncompressed).
func writeState(t testing.TB, src string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := &writer{ctx: context.Background(), tw: tar.NewWriter(&buf), src: Source{StateDir: src},
		m: &Manifest{Format: Format, Version: Version, Created: time.Now().UTC()}}
	if err := w.begin(); err != nil {
		t.Fatal(err)
	}
	if err := w.state(); err != nil {
		t.Fatal(err)
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}
	if err := w.tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readState reads a stream into dst, as Restore does before it loads the inventory.
func readState(stream []byte, dst string) (*Manifest, error) {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	r := &reader{ctx: context.Background(), tr: tar.NewReader(bytes.NewReader(stream)), root: root, seen: map[string]Entry{}}
	return r.all("test")
}

// TestStateRoundTrip writes a state dir's files and reads them into another: contents,
// modes, owners and symbolic links come back, a sparse HOME image stays sparse, and the
// runtime files are left out.
func TestStateRoundTrip(t *testing.T) {
	src := t.TempDir()
	app := filepath.Join(src, "nodes", "n1", "apps", "apps", "acme", "web")
	files := map[string]struct {
		body string
		mode os.FileMode
		gid  int
		left bool // out of the backup
	}{
		"keys/operator-signing.seed":                     {"SO…\n", 0o600, 0, false},
		"nodes/n1/apps/apps/acme/web/app.json":           {`{"uid":700000000}`, 0o600, 0, false},
		"nodes/n1/apps/apps/acme/web/releases/1/run":     {"#!/bin/sh\n", 0o750, 4242, false},
		"nodes/n1/apps/apps/acme/web/releases/1/x.tmp":   {"named like a skipped file, in a release", 0o640, 4242, false},
		"nodes/n1/apps/apps/acme/web/releases/1/staging": {"named like a skipped dir, in a release", 0o640, 4242, false},
		"nodes/n1/apps/packages/sha256-ab.tar.gz":        {"gz", 0o600, 0, false},
		"endpoints.json":                           {"{}", 0o600, 0, true},
		"nodes/n1/ring1.pid":                       {"1", 0o600, 0, true},
		"nodes/n1/apps/staging/half":               {"x", 0o600, 0, true},
		"nodes/n1/apps/apps/acme/web/home.img.tmp": {"x", 0o600, 0, true},
	}
	for name, f := range files {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(f.body), f.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, f.mode)
		os.Chown(p, 0, f.gid)
	}
	os.Symlink("releases/1", filepath.Join(app, "current"))
	os.MkdirAll(filepath.Join(app, "home"), 0o700)
	os.WriteFile(filepath.Join(app, "home", "not-here"), []byte("the mount point is left out"), 0o600)
	img, _ := os.Create(filepath.Join(app, "home.img"))
	img.Truncate(64 << 20)
	img.WriteAt([]byte("superblock"), 1024)
	img.WriteAt([]byte("a file in HOME"), 40<<20)
	img.Close()

	dst := filepath.Join(t.TempDir(), "new")
	m, err := readState(writeState(t, src), dst)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range files {
		b, err := os.ReadFile(filepath.Join(dst, name))
		if f.left {
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s was backed up: %v", name, err)
			}
			continue
		}
		var st syscall.Stat_t
		syscall.Stat(filepath.Join(dst, name), &st)
		if err != nil || string(b) != f.body || os.FileMode(st.Mode).Perm() != f.mode || int(st.Gid) != f.gid {
			t.Errorf("%s: %v %q mode %v gid %d; want %q mode %v gid %d", name, err, b, os.FileMode(st.Mode).Perm(), st.Gid, f.body, f.mode, f.gid)
		}
	}
	if l, err := os.Readlink(filepath.Join(dst, "nodes/n1/apps/apps/acme/web/current")); l != "releases/1" {
		t.Errorf("the symlink: %q %v", l, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "nodes/n1/apps/apps/acme/web/home")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the HOME mount point was backed up: %v", err)
	}
	got, _ := os.ReadFile(filepath.Join(dst, "nodes/n1/apps/apps/acme/web/home.img"))
	want, _ := os.ReadFile(filepath.Join(app, "home.img"))
	var st syscall.Stat_t
	syscall.Stat(filepath.Join(dst, "nodes/n1/apps/apps/acme/web/home.img"), &st)
	if !bytes.Equal(got, want) || st.Blocks*512 > 1<<20 {
		t.Errorf("the HOME image: same %v, %d bytes allocated; want the same bytes, sparse", bytes.Equal(got, want), st.Blocks*512)
	}
	if m.Homes != 1 || m.Frozen != 0 {
		t.Errorf("manifest: %d homes, %d frozen; want 1, 0 (not mounted)", m.Homes, m.Frozen)
	}
}

// hostile builds a stream: the format header, then entries (name, type, body or link).
func hostile(entries ...[3]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: headerName, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(headerContent))})
	tw.Write([]byte(headerContent))
	for _, e := range entries {
		h := &tar.Header{Name: e[0], Typeflag: e[1][0], Mode: 0o600}
		if h.Typeflag == tar.TypeSymlink {
			h.Linkname = e[2]
		} else if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e[2]))
		}
		tw.WriteHeader(h)
		tw.Write([]byte(e[2]))
	}
	tw.Close()
	return buf.Bytes()
}

// TestHostileStreams feeds streams no backup writes: each is refused with an error, and
// nothing lands outside the new state dir.
func TestHostileStreams(t *testing.T) {
	reg, sym, dir := string(rune(tar.TypeReg)), string(rune(tar.TypeSymlink)), string(rune(tar.TypeDir))
	outside := t.TempDir()
	for _, tc := range []struct {
		name   string
		stream []byte
		want   string
	}{
		{"dot-dot", hostile([3]string{"state/../escape", reg, "x"}), "not a state file"},
		{"absolute", hostile([3]string{"/tmp/escape", reg, "x"}), "not a state file"},
		{"outside state/", hostile([3]string{"keys/x", reg, "x"}), "not a state file"},
		{"through a symlink", hostile([3]string{"state/l", sym, outside}, [3]string{"state/l/escape", reg, "x"}), "escapes"},
		{"twice", hostile([3]string{"state/a", reg, "x"}, [3]string{"state/a", reg, "x"}), "twice"},
		{"a device", hostile([3]string{"state/dev", string(rune(tar.TypeChar)), ""}), "of type"},
		{"no manifest", hostile([3]string{"state/d/", dir, ""}), "ends before its manifest"},
		{"unlisted entry", hostile([3]string{"state/a", reg, "x"}, [3]string{manifestName, reg, `{"entries":[]}`}), "lists 0 entries"},
		{"entries after the manifest", hostile([3]string{manifestName, reg, `{"entries":[]}`}, [3]string{"state/a", reg, "x"}), "after the manifest"},
		{"no header", func() []byte { b := hostile(); return b[512+512:] }(), "not an enjin backup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readState(tc.stream, filepath.Join(t.TempDir(), "new"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if es, _ := os.ReadDir(outside); len(es) != 0 {
				t.Fatalf("%v written outside the state dir", es)
			}
		})
	}
}

func TestExtents(t *testing.T) {
	for _, tc := range []struct {
		s    string
		size int64
		ok   bool
	}{
		{"", 10, true}, {"0:4,6:4", 10, true}, {"6:4,0:4", 10, false}, {"0:4,2:4", 10, false},
		{"0:11", 10, false}, {"0:0", 10, false}, {"-1:2", 10, false}, {"9223372036854775807:1", 10, false}, {"x", 10, false},
	} {
		if _, err := decodeExtents(tc.s, tc.size); (err == nil) != tc.ok {
			t.Errorf("decodeExtents(%q, %d): %v, want ok %v", tc.s, tc.size, err, tc.ok)
		}
	}
}

// FuzzReader feeds arbitrary streams to the reader: it must return (an error, mostly), never
// panic, and write nothing outside the new state dir.
func FuzzReader(f *testing.F) {
	src := f.TempDir()
	os.MkdirAll(filepath.Join(src, "keys"), 0o700)
	os.WriteFile(filepath.Join(src, "keys", "operator-signing.seed"), []byte("SO\n"), 0o600)
	f.Add(writeState(f, src))
	f.Add(hostile([3]string{"state/l", string(rune(tar.TypeSymlink)), "/"}, [3]string{"state/l/x", string(rune(tar.TypeReg)), "x"}))
	outside := f.TempDir()
	f.Fuzz(func(t *testing.T, stream []byte) {
		readState(stream, filepath.Join(outside, "new"))
		os.RemoveAll(filepath.Join(outside, "new"))
		if es, _ := os.ReadDir(outside); len(es) != 0 {
			t.Fatalf("%v written outside the state dir", es)
		}
	})
}
