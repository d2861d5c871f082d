package images_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"enjin/services/images"
)

// A part another member passes on is kept only if its bytes hash to the record's digest and
// fit the record's size; once kept, a second copy is not read at all.
func TestAdoptChecksTheBytes(t *testing.T) {
	s := newStore(t)
	body := []byte("a disk, as another member stored it")
	h := sha256.Sum256(body)
	want := "sha256-" + hex.EncodeToString(h[:])
	d := want // a disk's image digest is its file's
	var refused *images.RefusedError
	if err := s.Adopt(d, images.PartDisk, want, strings.NewReader("something else entirely"), 100); !errors.As(err, &refused) {
		t.Fatalf("other bytes: %v; want refused", err)
	}
	if err := s.Adopt(d, images.PartDisk, want, bytes.NewReader(body), int64(len(body)-1)); !errors.As(err, &refused) {
		t.Fatalf("more bytes than the record says: %v; want refused", err)
	}
	if _, err := s.Open(d, images.PartDisk); !errors.Is(err, images.ErrNotFound) {
		t.Fatalf("a refused copy was kept: %v", err)
	}
	if err := s.Adopt(d, images.PartDisk, want, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if err := s.Adopt(d, images.PartDisk, want, errReader{}, int64(len(body))); err != nil {
		t.Fatalf("a second copy was read: %v", err)
	}
	f, err := s.Open(d, images.PartDisk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, _ := io.ReadAll(f); !bytes.Equal(got, body) {
		t.Fatalf("stored %q", got)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("read") }
