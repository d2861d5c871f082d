package apphost

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Limits on bundles.
const (
	MaxBundle   = 256 << 20 // compressed bytes
	maxUnpacked = 1 << 30
	maxFiles    = 20000
)

// Pack makes a bundle (gzipped tar) of dir, with deterministic order and no owners, so the
// same tree always gives the same digest. A symbolic link, pipe, socket or device in dir is
// an error: a bundle holds regular files and directories only.
func Pack(dir string) ([]byte, error) { return PackLevel(dir, gzip.BestSpeed) }

// PackLevel is Pack at a gzip level of one's choice: gzip.NoCompression where the bundle only
// crosses loopback. A bundle's name (TreeDigest) does not depend on how it was compressed.
func PackLevel(dir string, level int) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		return nil, err
	}
	if err := writeTree(zw, dir, nil, nil); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// TreeDigest is the digest of the bundle Pack makes of dir — of its tar, before compression,
// as a host names the package it stores — without compressing anything: what a client asks
// a host for before it uploads.
func TreeDigest(dir string) (string, error) {
	sum := sha256.New()
	if err := writeTree(sum, dir, nil, nil); err != nil {
		return "", err
	}
	return "sha256-" + hex.EncodeToString(sum.Sum(nil)), nil
}

// writeTree writes dir as Pack's tar to w, telling onFile (if set) of each regular file with
// its content's digest. A file refer names (by its path in the tar) goes without its content,
// as a reference to the file of that digest the node has (see delta.go).
func writeTree(w io.Writer, dir string, onFile func(Entry), refer func(path string) (string, bool)) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apphost: pack %s: %w", dir, err)
	}
	sort.Strings(files)
	tw := tar.NewWriter(w)
	for _, p := range files {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			// The host would refuse it; better to say so here than to leave it out and
			// deploy something else than what the directory holds.
			return fmt.Errorf("apphost: pack %s: %s is a %s: a bundle holds regular files and directories only", dir, rel, kindOf(fi.Mode()))
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: int64(fi.Mode().Perm()), Size: fi.Size(), Typeflag: tar.TypeReg}
		if fi.IsDir() {
			h.Typeflag, h.Size, h.Name = tar.TypeDir, 0, h.Name+"/"
		}
		if refer != nil && !fi.IsDir() {
			if digest, ok := refer(h.Name); ok {
				h.PAXRecords = map[string]string{refKey: digest, refSizeKey: strconv.FormatInt(h.Size, 10)}
				h.Size = 0
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() && h.PAXRecords == nil {
			if err := copyFile(tw, p, h, onFile); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// copyFile writes the content of the file at p (h.Size bytes) to tw, and tells onFile.
func copyFile(tw io.Writer, p string, h *tar.Header, onFile func(Entry)) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tw, sum), io.LimitReader(f, h.Size)); err != nil {
		return err
	}
	if onFile != nil {
		onFile(Entry{Path: h.Name, Size: h.Size, Exec: h.Mode&0o111 != 0, Digest: "sha256-" + hex.EncodeToString(sum.Sum(nil))})
	}
	return nil
}

func kindOf(m os.FileMode) string {
	switch {
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// Digest is a bundle's content address: the digest of its tar, uncompressed (TreeDigest's).
func Digest(b []byte) (string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, zr); err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	return "sha256-" + hex.EncodeToString(sum.Sum(nil)), nil
}

// validDigest reports whether d is a digest as hosts name packages.
func validDigest(d string) bool {
	hexPart, ok := strings.CutPrefix(d, "sha256-")
	if !ok || len(hexPart) != 64 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil && strings.ToLower(hexPart) == hexPart
}

// linkTree makes dst (an empty directory) a copy of the tree at src whose files are hard
// links to src's, and returns how many files it linked.
func linkTree(src, dst string) (int, error) {
	files := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		switch {
		case d.IsDir():
			return os.Mkdir(filepath.Join(dst, rel), 0o700)
		case d.Type().IsRegular():
			files++
			return os.Link(p, filepath.Join(dst, rel))
		}
		return fmt.Errorf("apphost: %s: not a file or directory", p)
	})
	return files, err
}

// restrict makes a release readable by the app's group only (root owns it, so the app cannot
// change its own code): directories 0750, files 0640, executables 0750.
func restrict(dir string, gid uint32) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o640)
		if d.IsDir() {
			mode = 0o750
		} else if fi, err := d.Info(); err == nil && fi.Mode()&0o111 != 0 {
			mode = 0o750
		}
		if err := os.Chown(p, 0, int(gid)); err != nil {
			return fmt.Errorf("apphost: %w", err)
		}
		return os.Chmod(p, mode)
	})
}
