package backup

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"

	"enjin/services/postgres"
)

// Target is where Restore restores a backup.
type Target struct {
	// StateDir is the new state directory: absent or empty.
	StateDir string
	// DatabaseURL is an empty database to restore the inventory into; empty means a fresh
	// managed PostgreSQL in StateDir/postgres.
	DatabaseURL string
	Logger      *slog.Logger
}

// ErrFormat is returned for a file that is not an enjin backup of a version this reads.
var ErrFormat = errors.New("not an enjin backup")

// ErrCorrupt is returned when an entry does not match the manifest, or the stream is cut.
var ErrCorrupt = errors.New("the backup is corrupt or was altered")

// dumpFile is where the inventory's dump waits, in the new state dir, for pg_restore.
const dumpFile = ".restore-inventory.pgdump"

// Restore restores the backup in file into t. On any failure it leaves t.StateDir as it
// found it: absent, or empty.
func Restore(ctx context.Context, file string, t Target) (*Manifest, error) {
	if t.Logger == nil {
		t.Logger = slog.New(slog.DiscardHandler)
	}
	created, err := prepareTarget(t.StateDir)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	m, err := restore(ctx, file, t)
	if err != nil {
		if created {
			os.RemoveAll(t.StateDir)
		} else if es, rerr := os.ReadDir(t.StateDir); rerr == nil {
			for _, e := range es {
				os.RemoveAll(filepath.Join(t.StateDir, e.Name()))
			}
		}
		return nil, fmt.Errorf("restore: %w; nothing restored", err)
	}
	return m, nil
}

// prepareTarget makes the state dir, or checks that the one there is empty.
func prepareTarget(dir string) (created bool, err error) {
	es, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		created = true
	case err != nil:
		return false, err
	case len(es) > 0:
		return false, fmt.Errorf("%s is not empty: restore only into a new state dir", dir)
	}
	// 0711, as `enjin up` makes it: the postgres user passes through to its data dir. Only
	// the dir itself is made, so that removing it leaves nothing behind.
	if created {
		if err := os.Mkdir(dir, 0o711); err != nil {
			return false, err
		}
	}
	return created, os.Chmod(dir, 0o711)
}

func restore(ctx context.Context, file string, t Target) (*Manifest, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if magic, _ := br.Peek(4); string(magic) != zstdMagic {
		return nil, fmt.Errorf("%s: %w (not zstd-compressed)", file, ErrFormat)
	}
	zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	root, err := os.OpenRoot(t.StateDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	r := &reader{ctx: ctx, tr: tar.NewReader(corruption{zr}), root: root, seen: map[string]Entry{}}
	m, err := r.all(file)
	if err != nil {
		return nil, err
	}
	if err := inventory(ctx, t, filepath.Join(t.StateDir, dumpFile)); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return m, os.Remove(filepath.Join(t.StateDir, dumpFile))
}

// inventory loads the dump into t's database: a fresh managed one unless t names one.
func inventory(ctx context.Context, t Target, dump string) error {
	f, err := os.Open(dump)
	if err != nil {
		return err
	}
	defer f.Close()
	if t.DatabaseURL != "" {
		return postgres.Restore(ctx, "", t.DatabaseURL, f)
	}
	pg, err := postgres.Start(ctx, postgres.Config{Dir: filepath.Join(t.StateDir, "postgres"), Logger: t.Logger})
	if err != nil {
		return err
	}
	return errors.Join(postgres.Restore(ctx, "", pg.URL(), f), pg.Close())
}

// reader extracts a backup's entries into root, checking each against the manifest.
type reader struct {
	ctx  context.Context
	tr   *tar.Reader
	root *os.Root
	seen map[string]Entry
	list []string // names in stream order
}

// all reads the stream to its end: the header, the entries, the manifest, which must be last
// and match every entry.
func (r *reader) all(file string) (*Manifest, error) {
	hdr, err := r.tr.Next()
	if err != nil || hdr.Name != headerName || hdr.Size > 64 {
		return nil, fmt.Errorf("%s: %w (no %q entry first)", file, ErrFormat, headerName)
	}
	b, err := io.ReadAll(r.tr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (%v)", file, ErrCorrupt, err)
	}
	if f, v, _ := strings.Cut(strings.TrimSpace(string(b)), " "); f != Format || v != strconv.Itoa(Version) {
		return nil, fmt.Errorf("%s: %w of version 1 (it says %.40q)", file, ErrFormat, b)
	}
	for {
		if err := r.ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := r.tr.Next()
		if err != nil {
			return nil, fmt.Errorf("%w: the stream ends before its manifest (%v)", ErrCorrupt, err)
		}
		if hdr.Name == manifestName {
			return r.manifest()
		}
		if err := r.entry(hdr); err != nil {
			return nil, err
		}
	}
}

// entry extracts one entry and records what it found.
func (r *reader) entry(hdr *tar.Header) error {
	name := strings.TrimSuffix(hdr.Name, "/")
	dst := ""
	switch {
	case name == dumpName:
		dst = dumpFile
	case strings.HasPrefix(name, statePrefix) && path.Clean(name) == name && !strings.Contains(name, "/../"):
		dst = strings.TrimPrefix(name, statePrefix)
	}
	if dst == "" || !filepath.IsLocal(dst) {
		return fmt.Errorf("%w: entry %.80q is not a state file", ErrCorrupt, hdr.Name)
	}
	if _, dup := r.seen[hdr.Name]; dup {
		return fmt.Errorf("%w: entry %.80q twice", ErrCorrupt, hdr.Name)
	}
	e := Entry{Name: hdr.Name, Mode: uint32(hdr.Mode) & 0o777, UID: hdr.Uid, GID: hdr.Gid}
	if r.root == nil { // checking only
		return r.check(e, hdr)
	}
	var err error
	switch hdr.Typeflag {
	case tar.TypeDir:
		e.Type = "dir"
		err = r.root.Mkdir(dst, fs.FileMode(e.Mode))
	case tar.TypeSymlink:
		e.Type, e.Link = "symlink", hdr.Linkname
		err = r.root.Symlink(hdr.Linkname, dst)
	case tar.TypeReg:
		e.Type = "file"
		err = r.file(&e, dst, hdr)
	default:
		return fmt.Errorf("%w: entry %.80q of type %c", ErrCorrupt, hdr.Name, hdr.Typeflag)
	}
	if err == nil {
		err = r.root.Lchown(dst, e.UID, e.GID)
	}
	if err == nil && e.Type != "symlink" {
		err = r.root.Chmod(dst, fs.FileMode(e.Mode)) // beyond the umask
	}
	if err != nil {
		return fmt.Errorf("%s: %w", hdr.Name, err)
	}
	r.seen[hdr.Name], r.list = e, append(r.list, hdr.Name)
	return nil
}

// file writes a regular file's bytes (at its extents, if sparse) and hashes them.
func (r *reader) file(e *Entry, dst string, hdr *tar.Header) error {
	if err := sizes(e, hdr); err != nil {
		return err
	}
	f, err := r.root.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	sum := sha256.New()
	src := io.TeeReader(r.tr, sum)
	if e.Sparse == nil {
		_, err = io.Copy(f, src)
	} else {
		err = f.Truncate(e.Size)
		for _, x := range e.Sparse {
			if err == nil {
				_, err = io.Copy(io.NewOffsetWriter(f, x.Off), io.LimitReader(src, x.Len))
			}
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: cut short", ErrCorrupt)
	} else if err != nil {
		return err
	}
	e.SHA256 = hex.EncodeToString(sum.Sum(nil))
	return f.Close()
}

// sizes reads a regular file's size and, if it is sparse, its extents into e.
func sizes(e *Entry, hdr *tar.Header) error {
	e.Size = hdr.Size
	if s, ok := hdr.PAXRecords[paxSize]; ok {
		size, err := strconv.ParseInt(s, 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("%w: bad size %.20q", ErrCorrupt, s)
		}
		if e.Sparse, err = decodeExtents(hdr.PAXRecords[paxSparse], size); err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if e.Size = size; e.stored() != hdr.Size {
			return fmt.Errorf("%w: sparse map does not match the size stored", ErrCorrupt)
		}
	}
	return nil
}

// manifest reads the manifest and checks it lists exactly the entries read, as they were.
func (r *reader) manifest() (*Manifest, error) {
	var m Manifest
	b, err := io.ReadAll(io.LimitReader(r.tr, 64<<20))
	if err != nil || json.Unmarshal(b, &m) != nil {
		return nil, fmt.Errorf("%w: the manifest is unreadable", ErrCorrupt)
	}
	if _, err := r.tr.Next(); err != io.EOF {
		return nil, fmt.Errorf("%w: entries after the manifest", ErrCorrupt)
	}
	if len(m.Entries) != len(r.list) {
		return nil, fmt.Errorf("%w: the manifest lists %d entries, the file holds %d", ErrCorrupt, len(m.Entries), len(r.list))
	}
	for _, want := range m.Entries {
		got, ok := r.seen[want.Name]
		if !ok {
			return nil, fmt.Errorf("%w: %.80q is in the manifest, not in the file", ErrCorrupt, want.Name)
		}
		if d := got.same(want); d != "" {
			return nil, fmt.Errorf("%w: entry %.80q: its %s does not match the manifest", ErrCorrupt, want.Name, d)
		}
	}
	return &m, nil
}

// corruption marks the errors of reading the decompressed stream as ErrCorrupt.
type corruption struct{ r io.Reader }

func (c corruption) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w (%v)", ErrCorrupt, err)
	}
	return n, err
}
