package images

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// Adopt stores part p of image d from r — another ring 0 member's copy of a file this store
// lacks — keeping it only if its bytes hash to want, the image record's digest of that part:
// a member passing on anything else is refused, and nothing is kept. A part already stored is
// left as it is (r is not read). At most limit bytes are read.
func (s *Store) Adopt(d string, p Part, want string, r io.Reader, limit int64) error {
	if !ValidDigest(d) || !ValidDigest(want) {
		return fmt.Errorf("%w: malformed digest %q or %q", ErrNotFound, trunc(d, 80), trunc(want, 80))
	}
	if _, err := os.Stat(s.Path(d, p)); err == nil {
		return nil
	}
	tmp, err := os.CreateTemp(s.dir, ".adopt-*")
	if err != nil {
		return fmt.Errorf("images: adopt: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a name no longer there
	defer tmp.Close()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, sum), io.LimitReader(r, limit+1))
	if err != nil {
		return fmt.Errorf("images: adopt %s.%s: %w", d, p, err)
	}
	if n > limit {
		return refused("%s of image %s from another member is larger than %d bytes", p, d, limit)
	}
	if got := "sha256-" + hex.EncodeToString(sum.Sum(nil)); got != want {
		return refused("%s of image %s from another member hashes to %s, not %s", p, d, got, want)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("images: adopt: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err = s.place(tmp.Name(), d, p)
	return err
}
