package images_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"enjin/services/images"
	"enjin/test/harness"
)

// limits are the tests' limits: small enough to exceed cheaply.
var limits = images.Limits{MaxUpload: 16 << 20, MaxVirtualSize: harness.MaxVirtualSize, MaxKernel: 1 << 20, MaxInitrd: 4 << 20}

// toolTimeout is long enough that a refusal well within it was not a qemu-img run blocked on
// a canary and killed.
const toolTimeout = 20 * time.Second

func newStore(t *testing.T) *images.Store {
	t.Helper()
	s, err := images.New(images.Config{Dir: filepath.Join(t.TempDir(), "images"), ToolTimeout: toolTimeout, Logger: harness.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t *testing.T, s *images.Store, path string, format images.Format) (images.Image, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return s.Put(t.Context(), f, format, limits, nil)
}

// TestPutRefusesHostileImages uploads every hostile image: each is refused with its reason
// named, nothing is stored, and no file the image names is opened — the canaries prove it,
// and a second look proves the canaries can tell: qemu-img check, run on the same image
// without the store's care, opens them.
func TestPutRefusesHostileImages(t *testing.T) {
	s := newStore(t)
	for _, h := range harness.HostileImages(t) {
		t.Run(h.Name, func(t *testing.T) {
			start := time.Now()
			img, err := put(t, s, h.Path, images.Format(h.Format))
			took := time.Since(start)
			re, ok := errors.AsType[*images.RefusedError](err)
			if !ok || !strings.Contains(re.Reason, h.Reason) {
				t.Fatalf("got %+v, %v; want refused for %q", img, err, h.Reason)
			}
			if re.TooLarge || strings.Contains(re.Reason, "\n") {
				t.Errorf("reason %q (too large %v): want one line, not a size refusal", re.Reason, re.TooLarge)
			}
			if took > toolTimeout/2 {
				t.Errorf("refused after %v: a qemu-img run waited on something", took)
			}
			t.Logf("refused in %v: %s", took.Round(time.Millisecond), re.Reason)
			assertEmpty(t, s)
			if h.Canary == nil {
				return
			}
			if h.Canary.Opened() {
				t.Fatalf("%s was opened while the image was refused", h.Canary.Path)
			}
			// The witness works: qemu-img check, which opens an image's backing and data
			// files, trips it.
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			exec.CommandContext(ctx, "qemu-img", "check", "-f", "qcow2", h.Path).Run()
			if !h.Canary.Opened() {
				t.Fatalf("qemu-img check on %s did not trip %s: the canary proves nothing", h.Path, h.Canary.Path)
			}
		})
	}
}

// assertEmpty checks that the store holds no image and no staged upload.
func assertEmpty(t *testing.T, s *images.Store) {
	t.Helper()
	dir := storeDir(s)
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) > 0 {
		t.Fatalf("the store holds %v; want nothing", files)
	}
}

// storeDir is the store's directory.
func storeDir(s *images.Store) string {
	return filepath.Dir(s.Path("sha256-"+strings.Repeat("0", 64), images.PartDisk))
}

// generator yields n pseudo-random bytes, counting what was read.
type generator struct {
	left int64
	read atomic.Int64
	r    *rand.ChaCha8
}

func (g *generator) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.left)]
	g.r.Read(p)
	g.left -= int64(len(p))
	g.read.Add(int64(len(p)))
	return len(p), nil
}

// TestPutRefusesOversizeUploadStreaming streams 1 GiB at a store that takes 16 MiB: it is
// refused as too large having read little more than the limit, the staging directory never
// holds more than the limit, and nothing is left.
func TestPutRefusesOversizeUploadStreaming(t *testing.T) {
	s := newStore(t)
	staging := filepath.Join(storeDir(s), "staging")
	var most atomic.Int64
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { // ends with stop
		defer close(done)
		for ctx.Err() == nil {
			most.Store(max(most.Load(), du(staging)))
			time.Sleep(time.Millisecond)
		}
	}()
	g := &generator{left: 1 << 30, r: rand.NewChaCha8([32]byte{1})}
	_, err := s.Put(t.Context(), g, images.Raw, limits, nil)
	stop()
	<-done
	re, ok := errors.AsType[*images.RefusedError](err)
	if !ok || !re.TooLarge || !strings.Contains(re.Reason, "larger than the limit of 16777216 bytes") {
		t.Fatalf("got %v; want refused as too large", err)
	}
	if n := g.read.Load(); n > limits.MaxUpload+1<<20 {
		t.Errorf("read %d bytes of the upload; want little more than the limit, %d", n, limits.MaxUpload)
	}
	if m := most.Load(); m > limits.MaxUpload+1 {
		t.Errorf("staging held %d bytes at most; want at most the limit, %d", m, limits.MaxUpload)
	}
	assertEmpty(t, s)
	t.Logf("read %d bytes, staged at most %d", g.read.Load(), most.Load())
}

// du is the bytes in the files under dir.
func du(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestPutStoresStandaloneQCOW2: a raw image and a qcow2 of the same content are accepted and
// stored as one standalone qcow2 with that content, under a digest that is stable across
// uploads; a failing record takes a new file back out, and Delete and Sweep honor use.
func TestPutStoresStandaloneQCOW2(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.img")
	content := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{2}).Read(content[:1<<20]) // the rest zeros: stored sparse
	if err := os.WriteFile(raw, content, 0o644); err != nil {
		t.Fatal(err)
	}
	qcow := filepath.Join(dir, "disk.qcow2")
	harness.QemuImg(t, "convert", "-q", "-f", "raw", "-O", "qcow2", "-o", "compat=0.10", raw, qcow)

	a, err := put(t, s, raw, images.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != images.Disk || a.Source != images.Raw || a.VirtualSize != 4<<20 || !images.ValidDigest(a.Digest) || a.Size <= 0 {
		t.Fatalf("stored %+v", a)
	}
	stored := s.Path(a.Digest, images.PartDisk)
	out, err := exec.Command("qemu-img", "info", "--output=json", "-f", "qcow2", stored).Output()
	if err != nil || strings.Contains(string(out), "backing") || !strings.Contains(string(out), `"compat": "1.1"`) {
		t.Fatalf("qemu-img info of the stored image: %v\n%s", err, out)
	}
	if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, stored).CombinedOutput(); err != nil {
		t.Fatalf("stored content differs from the upload: %v\n%s", err, out)
	}
	if fi, err := os.Stat(stored); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != a.Size {
		t.Fatalf("stored file: %v, %v; want mode 0600 and %d bytes", fi.Mode(), err, a.Size)
	}

	again, err := put(t, s, raw, images.Raw)
	if err != nil || again.Digest != a.Digest {
		t.Fatalf("second upload: %+v, %v; want digest %s", again, err, a.Digest)
	}
	b, err := put(t, s, qcow, images.QCOW2)
	if err != nil || b.Digest != a.Digest || b.Source != images.QCOW2 {
		t.Fatalf("the same content as qcow2 (compat 0.10): %+v, %v; want digest %s", b, err, a.Digest)
	}
	if n := countFiles(t, filepath.Dir(stored)); n != 1 {
		t.Fatalf("%d files stored for one content; want 1", n)
	}

	// A failing record removes a file Put brought in, and leaves one that was there.
	other := filepath.Join(dir, "other.img")
	os.WriteFile(other, bytes.Repeat([]byte{7}, 1<<20), 0o644)
	boom := errors.New("record failed")
	if _, err := s.Put(t.Context(), openFile(t, other), images.Raw, limits, func(images.Image) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v; want the record's error", err)
	}
	if _, err := s.Put(t.Context(), openFile(t, raw), images.Raw, limits, func(images.Image) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v; want the record's error", err)
	}
	if n := countFiles(t, filepath.Dir(stored)); n != 1 {
		t.Fatalf("%d files stored after failed records; want the first one only", n)
	}

	// Delete and Sweep remove only what nothing uses.
	inUse := func(string) (bool, error) { return true, nil }
	unused := func(string) (bool, error) { return false, nil }
	if err := s.Delete(a.Digest, inUse); err != nil {
		t.Fatal(err)
	}
	if f, err := s.Open(a.Digest, images.PartDisk); err != nil {
		t.Fatalf("open after a refused delete: %v", err)
	} else {
		f.Close()
	}
	if swept, err := s.Sweep(inUse); err != nil || len(swept) != 0 {
		t.Fatalf("sweep with everything in use removed %v, %v", swept, err)
	}
	if swept, err := s.Sweep(unused); err != nil || len(swept) != 1 || swept[0] != a.Digest {
		t.Fatalf("sweep removed %v, %v; want %s", swept, err, a.Digest)
	}
	if _, err := s.Open(a.Digest, images.PartDisk); !errors.Is(err, images.ErrNotFound) {
		t.Fatalf("open after sweep: %v; want ErrNotFound", err)
	}
	if _, err := s.Open("../../etc/passwd", images.PartDisk); !errors.Is(err, images.ErrNotFound) {
		t.Fatalf("open of a malformed digest: %v; want ErrNotFound", err)
	}
}

func openFile(t *testing.T, path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func countFiles(t *testing.T, dir string) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() {
			n++
		}
	}
	return n
}

// TestParseFormat: only raw and qcow2 may be declared.
func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{{"raw", true}, {"qcow2", true}, {"QCOW2", false}, {"vmdk", false}, {"", false}, {"qcow", false}} {
		_, err := images.ParseFormat(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseFormat(%q): got %v want ok=%v", tc.in, err, tc.ok)
		}
	}
}
