package backup

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Check reads a backup from src to its end, as restore would, without writing anything: the
// format, every entry's content against its digest in the manifest, the manifest last. A
// backup cut short or altered is ErrCorrupt (or ErrFormat). It reads src whole, so it can
// check a backup while it is being saved (src a TeeReader to the file).
func Check(ctx context.Context, src io.Reader) (*Manifest, error) {
	br := bufio.NewReader(src)
	if magic, _ := br.Peek(4); string(magic) != zstdMagic {
		return nil, fmt.Errorf("backup: %w (not zstd-compressed)", ErrFormat)
	}
	zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer zr.Close()
	r := &reader{ctx: ctx, tr: tar.NewReader(corruption{zr}), seen: map[string]Entry{}}
	m, err := r.all("backup")
	if err == nil {
		_, err = io.Copy(io.Discard, corruption{zr}) // what follows the tar stream, to the end
	}
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// check records an entry without writing it, hashing a regular file's content.
func (r *reader) check(e Entry, hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeDir:
		e.Type = "dir"
	case tar.TypeSymlink:
		e.Type, e.Link = "symlink", hdr.Linkname
	case tar.TypeReg:
		e.Type = "file"
		if err := sizes(&e, hdr); err != nil {
			return err
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, r.tr); errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: cut short", ErrCorrupt)
		} else if err != nil {
			return err
		}
		e.SHA256 = hex.EncodeToString(sum.Sum(nil))
	default:
		return fmt.Errorf("%w: entry %.80q of type %c", ErrCorrupt, hdr.Name, hdr.Typeflag)
	}
	r.seen[hdr.Name], r.list = e, append(r.list, hdr.Name)
	return nil
}
