package apphost

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"enjin"
)

// A deploy of a directory the app had before with some files changed sends only those: the
// client asks the node which of its files' digests it has (HaveFiles, among the app's own
// releases only), and sends a delta bundle — Pack's tar in which each file the node has is
// an entry without content, naming the file's digest and size in PAX records. The node copies
// such a file from the release that has it (a copy: each release's files are its own),
// checks its size, and names the release by the digest of the tar the whole tree makes (TreeDigest's,
// computed as it unpacks), so the same directory deployed again later is found by digest.
// Each release keeps the digests of its files beside it (releases/N.files).

// Entry is a file of a tree as a bundle holds it: its path in the tar, size, whether it is
// executable, and the digest of its content.
type Entry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Exec   bool   `json:"exec,omitempty"`
	Digest string `json:"digest"`
}

// The PAX records of an entry sent without content.
const (
	refKey     = "ENJIN.sha256"
	refSizeKey = "ENJIN.size"
)

// Scan reads dir as Pack packs it: the package's digest (TreeDigest's) and each file's.
func Scan(dir string) (string, []Entry, error) {
	sum := sha256.New()
	var files []Entry
	if err := writeTree(sum, dir, func(e Entry) { files = append(files, e) }, nil); err != nil {
		return "", nil, err
	}
	return "sha256-" + hex.EncodeToString(sum.Sum(nil)), files, nil
}

// PackDelta packs dir as PackLevel does, but for the files (entries as Scan gave them) whose
// digest the node has: those go as references. It returns the bundle and how many files
// went whole.
func PackDelta(dir string, level int, files []Entry, has func(digest string) bool) ([]byte, int, error) {
	byPath := map[string]Entry{}
	for _, e := range files {
		byPath[e.Path] = e
	}
	var buf strings.Builder
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		return nil, 0, err
	}
	whole := 0
	err = writeTree(zw, dir, func(Entry) { whole++ }, func(path string) (string, bool) {
		e, ok := byPath[path]
		return e.Digest, ok && has(e.Digest)
	})
	if err == nil {
		err = zw.Close()
	}
	return []byte(buf.String()), whole, err
}

// unpackStream extracts the gzipped tar r into dir (a fresh directory only root can enter),
// refusing absolute paths, "..", links, devices, and bundles beyond the size and file limits;
// an entry sent without content is taken from the file ref gives for its digest (nil: none
// may be). It returns how many files it wrote, the digest of the tree (TreeDigest's), and
// its files. Files are created 0600 (0700 if executable): restrict gives them their final
// modes once all are there, before the directory is moved where an app can see it.
func unpackStream(r io.Reader, dir string, ref func(digest string) (string, bool)) (int, string, []Entry, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return 0, "", nil, fmt.Errorf("bundle: %w", err)
	}
	tr := tar.NewReader(zr)
	canon := sha256.New() // the tar the tree makes: as sent, with each reference's content
	ctw := tar.NewWriter(canon)
	var total int64
	var entries []Entry
	for n := 0; ; n++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if err := ctw.Close(); err != nil {
				return 0, "", nil, err
			}
			return len(entries), "sha256-" + hex.EncodeToString(canon.Sum(nil)), entries, nil
		}
		if err != nil {
			return 0, "", nil, fmt.Errorf("bundle: %w", err)
		}
		if n >= maxFiles {
			return 0, "", nil, errors.New("bundle: too many files")
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) {
			return 0, "", nil, fmt.Errorf("bundle: path %q escapes the bundle", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				return 0, "", nil, err
			}
			if err := ctw.WriteHeader(&tar.Header{Name: h.Name, Mode: h.Mode, Typeflag: tar.TypeDir}); err != nil {
				return 0, "", nil, err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return 0, "", nil, err
			}
			e := Entry{Path: h.Name, Size: h.Size, Exec: h.Mode&0o111 != 0}
			var src io.Reader = io.LimitReader(tr, h.Size)
			var from *os.File
			if d, ok := h.PAXRecords[refKey]; ok {
				if from, e.Size, err = referenced(h, d, ref); err != nil {
					return 0, "", nil, err
				}
				src = io.LimitReader(from, e.Size)
			}
			if total += e.Size; total > maxUnpacked {
				err = errors.New("bundle: unpacks to more than 1 GiB")
			} else {
				e.Digest, err = writeFile(p, e, src, ctw, h.Mode)
			}
			if from != nil {
				from.Close()
			}
			if err != nil {
				return 0, "", nil, err
			}
			entries = append(entries, e)
		default:
			return 0, "", nil, fmt.Errorf("bundle: %q: only files and directories are allowed", h.Name)
		}
	}
}

// referenced opens the file an entry sent without content names, checking its size.
func referenced(h *tar.Header, digest string, ref func(string) (string, bool)) (*os.File, int64, error) {
	size, err := strconv.ParseInt(h.PAXRecords[refSizeKey], 10, 64)
	if ref == nil || !validDigest(digest) || err != nil || size < 0 || h.Size != 0 {
		return nil, 0, fmt.Errorf("bundle: %q: a reference this deploy may not hold", h.Name)
	}
	path, ok := ref(digest)
	if !ok {
		return nil, 0, fmt.Errorf("bundle: %q: its content (%s) was not sent and is in none of the app's releases", h.Name, digest)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("bundle: %q: %w", h.Name, err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != size {
		f.Close()
		return nil, 0, fmt.Errorf("bundle: %q: %s is not %d bytes here", h.Name, digest, size)
	}
	return f, size, nil
}

// writeFile creates the file at p with src's e.Size bytes, writing its canonical entry to
// ctw too, and returns the content's digest.
func writeFile(p string, e Entry, src io.Reader, ctw *tar.Writer, mode int64) (string, error) {
	if err := ctw.WriteHeader(&tar.Header{Name: e.Path, Mode: mode, Size: e.Size, Typeflag: tar.TypeReg}); err != nil {
		return "", err
	}
	perm := os.FileMode(0o600)
	if e.Exec {
		perm = 0o700 // restrict keeps the executable bit
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, ctw, sum), src)
	if err == nil && n != e.Size {
		err = fmt.Errorf("bundle: %q: %d bytes of %d", e.Path, n, e.Size)
	}
	if err != nil {
		return "", err
	}
	return "sha256-" + hex.EncodeToString(sum.Sum(nil)), f.Close()
}

// filesPath is where release n's file digests are kept.
func (a *app) filesPath(n int) string { return a.releaseDir(n) + ".files" }

func (a *app) saveFiles(n int, files []Entry) error {
	b, err := json.Marshal(files)
	if err != nil {
		return err
	}
	return os.WriteFile(a.filesPath(n), b, 0o600)
}

// fileIndex is where, among the app's releases here, a file of each digest is.
func (a *app) fileIndex() map[string]string {
	a.mu.Lock()
	rs := append([]Release(nil), a.releases...)
	a.mu.Unlock()
	idx := map[string]string{}
	for i := len(rs) - 1; i >= 0; i-- {
		b, err := os.ReadFile(a.filesPath(rs[i].Number))
		var files []Entry
		if err != nil || json.Unmarshal(b, &files) != nil {
			continue // a release from before digests were kept, or gone
		}
		for _, e := range files {
			if _, ok := idx[e.Digest]; !ok {
				idx[e.Digest] = filepath.Join(a.releaseDir(rs[i].Number), filepath.FromSlash(e.Path))
			}
		}
	}
	return idx
}

// HaveFiles says which of digests the app's releases here have files of: what a deploy of
// the app need not send. Another app's files are never counted.
func (h *Host) HaveFiles(tenant enjin.TenantID, name string, digests []string) ([]string, error) {
	if len(digests) > maxFiles {
		return nil, &FieldError{Field: "digests", Msg: fmt.Sprintf("%d: at most %d", len(digests), maxFiles)}
	}
	a, err := h.existing(tenant, name)
	if err != nil {
		return nil, err
	}
	idx := a.fileIndex()
	have := []string{}
	for _, d := range digests {
		if _, ok := idx[d]; ok {
			have = append(have, d)
		}
	}
	return have, nil
}

// DeployDelta deploys a delta bundle (see above) as the app's next release, like Deploy.
// The app must have a release already; the files the bundle does not carry come from its
// releases here.
func (h *Host) DeployDelta(ctx context.Context, tenant enjin.TenantID, name string, body io.Reader, progress Progress) (Release, error) {
	a, err := h.existing(tenant, name)
	if err != nil {
		return Release{}, err
	}
	a.deploy.Lock()
	defer a.deploy.Unlock()
	idx := a.fileIndex()
	r, files, err := a.newReleaseFrom(func(stage string) (int, string, []Entry, error) {
		return unpackStream(body, stage, func(d string) (string, bool) { p, ok := idx[d]; return p, ok })
	})
	if err != nil {
		return Release{}, err
	}
	return a.goLive(ctx, r, files, 0, progress)
}
