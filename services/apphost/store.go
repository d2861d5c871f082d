package apphost

import (
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// ErrTooLarge is returned for a bundle over MaxBundle bytes.
var ErrTooLarge = errors.New("bundle too large")

// storePackage streams a bundle into the package store — a directory only root can enter —
// hashing it on the way, and returns its digest and size. It never holds the bundle in
// memory; a bundle over MaxBundle bytes is refused with ErrTooLarge and leaves nothing.
func (h *Host) storePackage(body io.Reader) (digest string, size int64, err error) {
	tmp, err := os.CreateTemp(filepath.Join(h.cfg.Dir, "packages"), "upload-")
	if err != nil {
		return "", 0, fmt.Errorf("apphost: store package: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// The package is named for its tar, uncompressed (TreeDigest): read as it arrives.
	pr, pw := io.Pipe()
	unzipped := make(chan error, 1)
	sum := sha256.New()
	go func() { // ends when the upload has been read, or failed
		zr, err := gzip.NewReader(pr)
		if err == nil {
			const most = maxUnpacked + maxFiles*1024 // the files and their headers
			var n int64
			if n, err = io.Copy(sum, io.LimitReader(zr, most+1)); err == nil && n > most {
				err = errors.New("unpacks to more than 1 GiB")
			}
		}
		io.Copy(io.Discard, pr) // whatever is left, so the upload is still read whole
		unzipped <- err
	}()
	size, err = io.Copy(io.MultiWriter(tmp, pw), io.LimitReader(body, MaxBundle+1))
	pw.CloseWithError(err)
	if uerr := <-unzipped; err == nil && uerr != nil {
		return "", 0, &FieldError{Field: "bundle", Msg: "not a gzipped tar: " + uerr.Error()}
	}
	if err != nil {
		return "", 0, fmt.Errorf("apphost: receive bundle: %w", err)
	}
	if size > MaxBundle {
		return "", 0, fmt.Errorf("apphost: bundle over %d bytes: %w", MaxBundle, ErrTooLarge)
	}
	if err = tmp.Close(); err != nil {
		return "", 0, fmt.Errorf("apphost: store package: %w", err)
	}
	digest = "sha256-" + hex.EncodeToString(sum.Sum(nil))
	if err = os.Rename(tmp.Name(), h.packagePath(digest)); err != nil {
		return "", 0, fmt.Errorf("apphost: store package: %w", err)
	}
	return digest, size, nil
}

// stagingDir makes a fresh directory, only root can enter, to unpack a bundle in before its
// files get their final owner and modes and it is moved into place.
func (h *Host) stagingDir() (string, error) {
	var b [8]byte
	rand.Read(b[:])
	dir := filepath.Join(h.cfg.Dir, "staging", hex.EncodeToString(b[:]))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("apphost: staging: %w", err)
	}
	return dir, nil
}

// prune keeps the app's live release and its newest KeepReleases others, deleting the
// directories and records of older ones, then deletes packages no release on this host
// refers to any more. The caller holds a.deploy.
func (a *app) prune() {
	h := a.host
	a.mu.Lock()
	rs := append([]Release(nil), a.releases...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Number > rs[j].Number })
	var keep, drop []Release
	for _, r := range rs {
		if r.Number == a.current || len(keep) < h.cfg.KeepReleases {
			keep = append(keep, r)
		} else {
			drop = append(drop, r)
		}
	}
	if len(drop) > 0 {
		sort.Slice(keep, func(i, j int) bool { return keep[i].Number < keep[j].Number })
		a.releases = keep
		_ = a.save()
	}
	a.mu.Unlock()
	for _, r := range drop {
		os.Remove(a.filesPath(r.Number))
		if err := os.RemoveAll(a.releaseDir(r.Number)); err != nil {
			h.log.Warn("old release not removed", "tenant", a.tenant, "app", a.name, "release", r.Number, "err", err)
		}
	}
	if len(drop) > 0 {
		h.prunePackages()
	}
}

// prunePackages deletes every package no release of any app refers to. Deploys hold
// h.pkgs for reading from storing their package to recording its release, so none is lost
// between the two.
func (h *Host) prunePackages() {
	h.pkgs.Lock()
	defer h.pkgs.Unlock()
	used := map[string]bool{}
	apps := h.allApps()
	for _, a := range apps {
		a.mu.Lock()
		for _, r := range a.releases {
			used[r.Digest] = true
		}
		a.mu.Unlock()
	}
	files, _ := filepath.Glob(filepath.Join(h.cfg.Dir, "packages", "sha256-*.tar.gz"))
	for _, f := range files {
		d := filepath.Base(f)
		d = d[:len(d)-len(".tar.gz")]
		if !used[d] {
			os.Remove(f)
		}
	}
}
