// Package backup writes and reads the one-file backup of an `enjin up` state directory, and
// restores it into a fresh one: what `enjin backup` and `enjin restore` run.
//
// The file is a tar stream compressed with zstd. Its first entry, "enjin-backup", names the
// format and its version, so a file of another kind is refused before anything is written;
// then come the inventory ("inventory.pgdump", pg_dump's custom format) and the state
// directory's files under "state/" (the trust chain, the NATS resolver's account JWTs, each
// ring 1 node's keys, package store, releases and app HOME images); its last entry,
// "manifest.json", lists every entry with its type, mode, owner, size and the sha256 of its
// bytes. Runtime files (endpoints.json, PID files, sockets, staging areas, the PostgreSQL
// cluster itself) are left out: `enjin up` makes them again.
//
// Guarantees: a backup file is mode 0600 (it holds every secret of the cloud) and appears
// under its name only once complete; a failed backup leaves nothing. A restore writes only
// into a state directory that is absent or empty, checks every entry against the manifest as
// it goes, and on any failure — a corrupt or altered file, a wrong format, a failed
// pg_restore — removes everything it wrote. HOME images are copied while their file system is
// frozen (FIFREEZE: written back and held still; the app's writes wait), so each is a
// consistent file system; sparse files stay sparse, in the file and once restored.
//
// Imported by cmd/enjin (`enjin backup`, `enjin restore`) and ring 0 (`GET /v1/backup`).
package backup

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Format and Version are what the first entry of a backup file says.
const (
	Format  = "enjin-backup"
	Version = 1
)

// Names of the entries that are not state files.
const (
	headerName    = "enjin-backup"
	dumpName      = "inventory.pgdump"
	manifestName  = "manifest.json"
	statePrefix   = "state/"
	paxSize       = "ENJIN.size"   // a sparse file's full size
	paxSparse     = "ENJIN.sparse" // its data extents: off:len,off:len…
	zstdMagic     = "\x28\xb5\x2f\xfd"
	headerContent = Format + " " + "1\n"
)

// Manifest is the last entry of a backup file: what it holds.
type Manifest struct {
	Format   string    `json:"format"`
	Version  int       `json:"version"`
	Created  time.Time `json:"created"`
	Enjin    string    `json:"enjin"`    // the version of enjin that wrote it
	Database string    `json:"database"` // "managed" or "external": where the inventory came from
	Homes    int       `json:"homes"`    // app HOME images in it
	Frozen   int       `json:"frozen"`   // of those, mounted ones copied with their file system frozen
	Entries  []Entry   `json:"entries"`
}

// Entry is one member of the tar stream.
type Entry struct {
	Name   string   `json:"name"`
	Type   string   `json:"type"` // "file", "dir" or "symlink"
	Mode   uint32   `json:"mode"` // permission bits
	UID    int      `json:"uid"`
	GID    int      `json:"gid"`
	Size   int64    `json:"size,omitempty"` // a file's full size
	Link   string   `json:"link,omitempty"`
	Sparse []Extent `json:"sparse,omitempty"` // a sparse file's data; its bytes alone are stored
	SHA256 string   `json:"sha256,omitempty"` // of a file's stored bytes
}

// Extent is a run of data in a sparse file.
type Extent struct {
	Off int64 `json:"off"`
	Len int64 `json:"len"`
}

// stored is how many bytes of e the stream holds.
func (e Entry) stored() int64 {
	if e.Sparse == nil {
		return e.Size
	}
	var n int64
	for _, x := range e.Sparse {
		n += x.Len
	}
	return n
}

// same reports how e and o, the manifest's word for the same entry, differ ("" if not).
func (e Entry) same(o Entry) string {
	switch {
	case e.Type != o.Type || e.Mode != o.Mode || e.UID != o.UID || e.GID != o.GID || e.Link != o.Link:
		return "type, mode, owner or link target"
	case e.Size != o.Size || encodeExtents(e.Sparse) != encodeExtents(o.Sparse):
		return "size"
	case e.SHA256 != o.SHA256:
		return "sha256"
	}
	return ""
}

func encodeExtents(xs []Extent) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatInt(x.Off, 10) + ":" + strconv.FormatInt(x.Len, 10)
	}
	return strings.Join(parts, ",")
}

// decodeExtents reads encodeExtents' form back, checking the extents are in order, do not
// overlap and end by size.
func decodeExtents(s string, size int64) ([]Extent, error) {
	xs := []Extent{}
	if s == "" {
		return xs, nil
	}
	var end int64
	for p := range strings.SplitSeq(s, ",") {
		o, l, ok := strings.Cut(p, ":")
		off, err1 := strconv.ParseInt(o, 10, 64)
		n, err2 := strconv.ParseInt(l, 10, 64)
		if !ok || err1 != nil || err2 != nil || off < end || n <= 0 || off+n > size || off+n < off {
			return nil, fmt.Errorf("bad sparse map %.60q", s)
		}
		xs = append(xs, Extent{off, n})
		end = off + n
	}
	return xs, nil
}
