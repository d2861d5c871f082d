package backup

import (
	"archive/tar"
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
	"time"

	"github.com/klauspost/compress/zstd"

	"enjin"
	"enjin/services/apphost"
	"enjin/services/postgres"
)

// Source is what Create backs up.
type Source struct {
	// StateDir is the state directory of `enjin up`; the cloud may be running.
	StateDir string
	// DatabaseURL is the inventory's database when it is not the managed one of StateDir.
	DatabaseURL string
	// Enjin is the version of enjin writing the backup, recorded in the manifest.
	Enjin  string
	Logger *slog.Logger
}

// skipped are the state files a backup leaves out (path.Match patterns, relative to the state
// directory): the database cluster (its dump goes in instead), what `enjin up` writes anew on
// every start, and what a node clears at start or holds only while it runs.
var skipped = []string{
	"postgres", "endpoints.json", "ops.creds", "admin.header", "images/staging",
	"nodes/*/ring1.pid", "nodes/*/ring1.log", "nodes/*/apps-api.addr",
	"nodes/*/apps/staging", "nodes/*/apps/sandbox", "nodes/*/apps/packages/upload-*",
	"nodes/*/apps/apps/*/*/*.tmp", ".inventory-*.pgdump",
	// The system tenant's HOMEs: its backup job keeps the backups in one, which a backup must
	// neither hold nor freeze while that job writes to it. The apps themselves are kept, so a
	// restored cloud goes on making backups (into an empty HOME).
	"nodes/*/apps/apps/" + string(enjin.SystemTenant) + "/*/home.img",
	"nodes/*/apps/apps/" + string(enjin.SystemTenant) + "/*/home",
}

// Create writes a backup of src to the file out (mode 0600), through a temporary file in the
// same directory that is renamed to out once complete.
func Create(ctx context.Context, out string, src Source) (*Manifest, error) {
	m, err := create(ctx, out, src)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// Write writes a backup of src to out as it is made (to a client, say); the inventory's
// dump waits in a temporary file in the state directory until it is copied in.
func Write(ctx context.Context, out io.Writer, src Source) (*Manifest, error) {
	src, err := src.check()
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	m, err := encode(ctx, out, src.StateDir, "", src)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// check fills in src's defaults and checks it names a cloud's state directory.
func (src Source) check() (Source, error) {
	if src.Logger == nil {
		src.Logger = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(filepath.Join(src.StateDir, "keys", "operator-signing.seed")); err != nil {
		return src, fmt.Errorf("%s holds no trust chain: not the state dir of a cloud", src.StateDir)
	}
	var err error
	src.StateDir, err = filepath.Abs(src.StateDir)
	return src, err
}

// encode writes the backup's compressed tar stream to out: the inventory's dump made in
// dumpDir, the state directory but self (the file being written, if it is in there).
func encode(ctx context.Context, out io.Writer, dumpDir, self string, src Source) (*Manifest, error) {
	zw, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	w := &writer{ctx: ctx, tw: tar.NewWriter(zw), src: src, self: self,
		m: &Manifest{Format: Format, Version: Version, Created: time.Now().UTC(), Enjin: src.Enjin}}
	if err := w.all(dumpDir); err != nil {
		zw.Close()
		return nil, err
	}
	if err := errors.Join(w.tw.Close(), zw.Close()); err != nil {
		return nil, err
	}
	return w.m, nil
}

func create(ctx context.Context, out string, src Source) (*Manifest, error) {
	src, err := src.check()
	if err != nil {
		return nil, err
	}
	if out, err = filepath.Abs(out); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return nil, err
	}
	m, err := encode(ctx, tmp, filepath.Dir(out), tmp.Name(), src)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return nil, err
	}
	done = true
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		d.Sync() // the rename, on disk
		d.Close()
	}
	return m, nil
}

// writer adds entries to a backup's tar stream and records them in its manifest.
type writer struct {
	ctx   context.Context
	tw    *tar.Writer
	src   Source
	m     *Manifest
	homes map[string]string // a HOME image → its mount point, and a mount point → ""
	self  string            // the file being written, which may be in the state dir
}

// all writes every entry: the format header, the inventory, the state files, the manifest.
func (w *writer) all(dumpDir string) error {
	if err := w.begin(); err != nil {
		return err
	}
	if err := w.inventory(dumpDir); err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	if err := w.state(); err != nil {
		return err
	}
	return w.finish()
}

// begin writes the entry naming the format.
func (w *writer) begin() error {
	hdr := &tar.Header{Name: headerName, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(headerContent)), ModTime: w.m.Created}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := io.WriteString(w.tw, headerContent)
	return err
}

// finish writes the manifest, the last entry.
func (w *writer) finish() error {
	b, _ := json.MarshalIndent(w.m, "", "  ")
	hdr := &tar.Header{Name: manifestName, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(b)), ModTime: w.m.Created}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := w.tw.Write(b)
	return err
}

// inventory dumps the database into a temporary file in dir and adds it. The managed server
// is used where it runs (the cloud is up), or started for the dump and stopped after.
func (w *writer) inventory(dir string) error {
	dbURL, database := w.src.DatabaseURL, "external"
	if dbURL == "" {
		database = "managed"
		pgDir := filepath.Join(w.src.StateDir, "postgres")
		if _, err := os.Stat(filepath.Join(pgDir, "data")); err != nil {
			return fmt.Errorf("no managed PostgreSQL in %s: give the cloud's --database-url", w.src.StateDir)
		}
		var err error
		if dbURL, err = postgres.Running(pgDir); errors.Is(err, postgres.ErrNotRunning) {
			pg, err := postgres.Start(w.ctx, postgres.Config{Dir: pgDir, Logger: w.src.Logger})
			if err != nil {
				return err
			}
			defer pg.Close()
			dbURL = pg.URL()
		} else if err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(dir, ".inventory-*.pgdump") // 0600
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := postgres.Dump(w.ctx, "", dbURL, f); err != nil {
		return err
	}
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	w.m.Database = database
	return w.file(dumpName, f, info)
}

// state adds the state directory's files, but those skipped, under "state/".
func (w *writer) state() error {
	w.homes = map[string]string{}
	nodes, _ := filepath.Glob(filepath.Join(w.src.StateDir, "nodes", "*", "apps"))
	for _, n := range nodes {
		hs, err := apphost.Homes(n)
		if err != nil {
			return err
		}
		for _, h := range hs {
			w.homes[h.Image], w.homes[h.Mount] = h.Mount, ""
		}
	}
	return filepath.WalkDir(w.src.StateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := w.ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(w.src.StateDir, p)
		if rel == "." {
			return nil
		}
		if skip(filepath.ToSlash(rel)) || w.isMount(p) || p == w.self {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		return w.add(statePrefix+filepath.ToSlash(rel), p)
	})
}

func skip(rel string) bool {
	for _, pat := range skipped {
		if ok, _ := path.Match(pat, rel); ok {
			return true
		}
	}
	return false
}

func (w *writer) isMount(p string) bool {
	m, ok := w.homes[p]
	return ok && m == ""
}

// add adds the file, directory or symbolic link at p as name; other kinds are left out.
func (w *writer) add(name, p string) error {
	info, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // gone since the walk listed it
	} else if err != nil {
		return err
	}
	switch {
	case info.IsDir():
		return w.header(Entry{Name: name + "/", Type: "dir"}, info)
	case info.Mode()&fs.ModeSymlink != 0:
		link, err := os.Readlink(p)
		if err != nil {
			return err
		}
		return w.header(Entry{Name: name, Type: "symlink", Link: link}, info)
	case !info.Mode().IsRegular():
		return nil
	}
	if mount, ok := w.homes[p]; ok {
		return w.home(name, p, mount)
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return w.file(name, f, info)
}

// home adds a HOME image, with its file system frozen while it is read if it is mounted.
func (w *writer) home(name, img, mount string) error {
	w.m.Homes++
	if apphost.Mounted(mount) {
		thaw, err := freeze(mount)
		if err != nil {
			return fmt.Errorf("freeze HOME %s: %w", mount, err)
		}
		defer thaw()
		w.m.Frozen++
	}
	f, err := os.Open(img)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	return w.file(name, f, info)
}

// file adds a regular file's content, read from f: only its data extents if it is sparse.
func (w *writer) file(name string, f *os.File, info fs.FileInfo) error {
	e := Entry{Name: name, Type: "file", Size: info.Size()}
	xs, err := extents(f, info)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	e.Sparse = xs
	sum := sha256.New()
	if err := w.header(e, info); err != nil {
		return err
	}
	dst := io.MultiWriter(w.tw, sum)
	if xs == nil {
		if _, err := io.CopyN(dst, f, e.Size); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	for _, x := range xs {
		if _, err := io.Copy(dst, io.NewSectionReader(f, x.Off, x.Len)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	w.m.Entries[len(w.m.Entries)-1].SHA256 = hex.EncodeToString(sum.Sum(nil))
	return nil
}

// header writes e's tar header, its mode and owner from info, and records e.
func (w *writer) header(e Entry, info fs.FileInfo) error {
	e.Mode = uint32(info.Mode().Perm())
	hdr, err := tar.FileInfoHeader(info, e.Link)
	if err != nil {
		return err
	}
	e.UID, e.GID = hdr.Uid, hdr.Gid
	hdr.Name, hdr.Uname, hdr.Gname, hdr.Mode = e.Name, "", "", int64(e.Mode)
	hdr.Format = tar.FormatPAX
	if e.Type == "file" {
		hdr.Typeflag, hdr.Size = tar.TypeReg, e.stored()
		if e.Sparse != nil {
			hdr.PAXRecords = map[string]string{paxSize: strconv.FormatInt(e.Size, 10), paxSparse: encodeExtents(e.Sparse)}
		}
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", e.Name, err)
	}
	w.m.Entries = append(w.m.Entries, e)
	return nil
}
