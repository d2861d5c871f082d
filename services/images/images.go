// Package images is ring 0's store of the VM images tenants boot from: disk images, and
// kernel + initramfs pairs. Every upload is attack input until proven otherwise, so the store
// guarantees:
//
//   - An upload is streamed to a file in a staging directory only root can enter, never held
//     in memory, and refused (a *RefusedError with TooLarge) as soon as it passes its limit.
//   - Nothing reads a disk image before qemu-img info, run with the declared format (never
//     probed), has found it to be that format, with no backing file of any kind (absolute,
//     relative, json:), no external data file, no encryption, a virtual size within the limit;
//     a raw upload must not start with another format's header and a qcow2 one must pass
//     qemu-img check. qemu-img itself runs confined: as an unprivileged uid, in new PID,
//     network and IPC namespaces, with address-space, CPU-time and file-size limits and a
//     deadline, reaching the files only through descriptors it inherits.
//   - What is stored is a rewrite: qemu-img convert to a standalone qcow2 (compat 1.1),
//     checked again, named by the sha256 of its bytes (<digest>.qcow2), moved into place only
//     when whole. Identical uploads store one file. Kernel pairs are checked by their magic
//     (a bzImage's HdrS, an initramfs's gzip, zstd, xz or cpio) and stored under one digest.
//   - Every refusal is a *RefusedError whose Reason names the problem in one line.
//
// Only ring 0 (its meta API, and ring 0 itself for housekeeping) imports images.
package images

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Format is the format of a disk image as its uploader declares it.
type Format string

// The formats accepted. Whatever was uploaded is stored as a standalone qcow2.
const (
	Raw   Format = "raw"
	QCOW2 Format = "qcow2"
)

// ParseFormat reads a declared format.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Raw, QCOW2:
		return f, nil
	}
	return "", &RefusedError{Reason: fmt.Sprintf("format %q: want raw or qcow2", trunc(s, 40))}
}

// Kind is what an image is for.
type Kind string

const (
	Disk   Kind = "disk"   // a disk to boot from, stored as qcow2
	Kernel Kind = "kernel" // a kernel and its initramfs, for direct boot
)

// Part names one of the files an image is stored as.
type Part string

const (
	PartDisk   Part = "qcow2"  // a disk image's only file
	PartKernel Part = "kernel" // a kernel pair's bzImage
	PartInitrd Part = "initrd" // a kernel pair's initramfs
)

// Parts lists the files an image of kind k is stored as.
func Parts(k Kind) []Part {
	if k == Kernel {
		return []Part{PartKernel, PartInitrd}
	}
	return []Part{PartDisk}
}

// Image is what the store keeps of one upload.
type Image struct {
	Kind        Kind
	Digest      string // "sha256-<hex>": of the stored qcow2, or of a kernel pair (see PutKernel)
	Source      Format // a disk image's declared format; "" for a kernel pair
	Size        int64  // bytes stored: the qcow2, or kernel and initramfs together
	VirtualSize int64  // a disk's size as the guest sees it; 0 for a kernel pair
	Kernel      Blob   // a kernel pair's parts
	Initrd      Blob
}

// Blob is one stored file: its own digest and size.
type Blob struct {
	Digest string
	Size   int64
}

// Limits bound one upload. A zero field takes its default.
type Limits struct {
	MaxUpload      int64 // bytes of a disk image as uploaded; 0 is 8 GiB
	MaxVirtualSize int64 // a disk's size as the guest sees it; 0 is 64 GiB
	MaxKernel      int64 // bytes of a kernel; 0 is 64 MiB
	MaxInitrd      int64 // bytes of an initramfs; 0 is 512 MiB
}

// Default limits.
const (
	DefaultMaxUpload      = 8 << 30
	DefaultMaxVirtualSize = 64 << 30
	DefaultMaxKernel      = 64 << 20
	DefaultMaxInitrd      = 512 << 20
)

// WithDefaults returns l with every zero field at its default.
func (l Limits) WithDefaults() Limits {
	or := func(v, def int64) int64 {
		if v > 0 {
			return v
		}
		return def
	}
	return Limits{or(l.MaxUpload, DefaultMaxUpload), or(l.MaxVirtualSize, DefaultMaxVirtualSize),
		or(l.MaxKernel, DefaultMaxKernel), or(l.MaxInitrd, DefaultMaxInitrd)}
}

// RefusedError is an upload the store will not keep, and why. It is the uploader's doing:
// the API answers it with a 4xx.
type RefusedError struct {
	Reason   string // one line naming the problem, for the uploader
	TooLarge bool   // refused for its size while it was being received (413)
}

func (e *RefusedError) Error() string { return "images: refused: " + e.Reason }

func refused(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// ErrBody wraps an error reading the upload itself (the client's connection), as opposed to
// the store failing.
var ErrBody = errors.New("images: reading the upload")

// ErrNotFound is returned for a digest the store does not hold.
var ErrNotFound = errors.New("images: no such image")

// Config configures a Store. Dir is required; the zero value of every other field is useful.
type Config struct {
	Dir         string        // the store: created 0700, only root may enter it
	QemuImg     string        // the qemu-img program; "" looks it up in PATH
	Prlimit     string        // util-linux's prlimit; "" looks it up in PATH
	UID         uint32        // the uid (and gid) qemu-img runs as when the store runs as root; 0 is DefaultUID
	ToolTimeout time.Duration // the longest one qemu-img run may take (also its CPU time); 0 is 10 min
	ToolMemory  int64         // qemu-img's address-space limit; 0 is 1 GiB
	Concurrent  int           // qemu-img runs at once; 0 is 2
	Logger      *slog.Logger
}

// DefaultUID is the uid qemu-img runs as: below the app uids of ring 1 (from 700000000), far
// above the subordinate ids useradd hands out, and nobody's account.
const DefaultUID = 699_000_000

// Store is a content-addressed image store in one directory. It is safe for concurrent use.
type Store struct {
	dir, staging string
	tool         tool
	log          *slog.Logger
	slots        chan struct{} // one per qemu-img run allowed at once

	// mu orders moving images in and out with the callers' records of them: Put's record
	// callback and Delete's and Sweep's used callbacks run under it.
	mu sync.Mutex
}

// New opens (creating) the store in cfg.Dir, empties its staging directory of whatever a
// crash left there, and checks that qemu-img runs in its confinement.
func New(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("images: no directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Concurrent <= 0 {
		cfg.Concurrent = 2
	}
	s := &Store{dir: cfg.Dir, staging: filepath.Join(cfg.Dir, "staging"), log: cfg.Logger,
		slots: make(chan struct{}, cfg.Concurrent)}
	var err error
	if s.tool, err = newTool(cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone; this one must be root's only.
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	if err := os.RemoveAll(s.staging); err != nil {
		return nil, fmt.Errorf("images: clear staging: %w", err)
	}
	if err := os.Mkdir(s.staging, 0o700); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	return s, nil
}

var digestRE = regexp.MustCompile(`^sha256-[0-9a-f]{64}$`)

// ValidDigest reports whether d is a digest as the store writes them.
func ValidDigest(d string) bool { return digestRE.MatchString(d) }

// Path is where part p of the image with digest d is stored, whether or not it is. It
// panics on a malformed digest, which could name a file outside the store.
func (s *Store) Path(d string, p Part) string {
	if !ValidDigest(d) {
		panic(fmt.Sprintf("images: malformed digest %q", d))
	}
	return filepath.Join(s.dir, d+"."+string(p))
}

// Open opens part p of the image with digest d for reading; ErrNotFound if it is not stored.
func (s *Store) Open(d string, p Part) (*os.File, error) {
	if !ValidDigest(d) {
		return nil, fmt.Errorf("%w: malformed digest %q", ErrNotFound, trunc(d, 80))
	}
	f, err := os.Open(s.Path(d, p))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s.%s", ErrNotFound, d, p)
	}
	return f, err
}

// Delete removes every file of the image with digest d, unless used — called with the
// store locked against Put moving the same digest in — reports that something still refers
// to it. A nil used removes it regardless. Deleting what is not stored is no error.
func (s *Store) Delete(d string, used func(digest string) (bool, error)) error {
	if !ValidDigest(d) {
		return fmt.Errorf("%w: malformed digest %q", ErrNotFound, trunc(d, 80))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remove(d, used)
}

func (s *Store) remove(d string, used func(string) (bool, error)) error {
	if used != nil {
		inUse, err := used(d)
		if err != nil || inUse {
			return err
		}
	}
	var errs []error
	for _, p := range []Part{PartDisk, PartKernel, PartInitrd} {
		if err := os.Remove(s.Path(d, p)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("images: delete %s: %w", d, err)
	}
	return nil
}

// Sweep removes every stored image that used reports nothing refers to any more (records
// deleted with their tenant, say) and returns their digests.
func (s *Store) Sweep(used func(digest string) (bool, error)) ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("images: sweep: %w", err)
	}
	seen := map[string]bool{}
	var removed []string
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range ents {
		d, _, _ := strings.Cut(e.Name(), ".")
		if !ValidDigest(d) || seen[d] {
			continue
		}
		seen[d] = true
		inUse, err := used(d)
		if err != nil {
			return removed, err
		}
		if inUse {
			continue
		}
		if err := s.remove(d, nil); err != nil {
			return removed, err
		}
		removed = append(removed, d)
	}
	return removed, nil
}

// stage makes a fresh directory, only root can enter, for one upload's files.
func (s *Store) stage() (string, error) {
	var b [8]byte
	rand.Read(b[:])
	dir := filepath.Join(s.staging, hex.EncodeToString(b[:]))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("images: staging: %w", err)
	}
	return dir, nil
}

// place moves a checked, hashed file into the store as part p of digest d, unless the store
// has it already; it reports whether it was new. The caller holds s.mu.
func (s *Store) place(tmp, d string, p Part) (bool, error) {
	final := s.Path(d, p)
	if _, err := os.Stat(final); err == nil {
		return false, nil
	}
	if err := os.Rename(tmp, final); err != nil {
		return false, fmt.Errorf("images: store %s: %w", d, err)
	}
	return true, nil
}

// lookPath finds a program the store runs, unless configured.
func lookPath(configured, name string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("images: %s not found (apt-get install qemu-utils util-linux): %w", name, err)
	}
	return p, nil
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
