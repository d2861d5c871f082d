package harness

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// QemuImg runs qemu-img with args (as root, unconfined: only on files the test made) and
// fails the test if it fails.
func QemuImg(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "qemu-img", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Canary is a host file an attacker's image names — as its backing file, say — that nothing
// may open. It is a FIFO watched by inotify: any open that succeeds (a non-blocking one, or
// a blocking one that a writer let through) is an IN_OPEN event, and a blocking open that
// waits for a writer is seen by a watcher polling for readers. Either counts.
type Canary struct {
	Path    string
	fd      int
	readers atomic.Int64
}

// NewCanary makes a canary named name in dir and watches it until the test ends.
func NewCanary(t testing.TB, dir, name string) *Canary {
	t.Helper()
	c := &Canary{Path: filepath.Join(dir, name)}
	if err := unix.Mkfifo(c.Path, 0o644); err != nil {
		t.Fatalf("canary: %v", err)
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatalf("canary: inotify: %v", err)
	}
	c.fd = fd
	if _, err := unix.InotifyAddWatch(fd, c.Path, unix.IN_OPEN|unix.IN_ACCESS); err != nil {
		unix.Close(fd)
		t.Fatalf("canary: watch %s: %v", c.Path, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // ends at cleanup
		defer close(done)
		c.watchReaders(ctx)
	}()
	t.Cleanup(func() {
		stop()
		<-done
		unix.Close(fd)
	})
	return c
}

// watchReaders polls for a reader of the FIFO: opening it for writing without blocking
// succeeds only while one has it open or waits in open for a writer.
func (c *Canary) watchReaders(ctx context.Context) {
	for ctx.Err() == nil {
		fd, err := unix.Open(c.Path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			c.readers.Add(1)
			unix.Close(fd)
		}
		time.Sleep(time.Millisecond)
	}
}

// Opened reports whether anything opened the canary so far.
func (c *Canary) Opened() bool {
	buf := make([]byte, 4096)
	n, err := unix.Read(c.fd, buf)
	if err != nil && !errors.Is(err, unix.EAGAIN) {
		panic("canary: read inotify: " + err.Error())
	}
	return n > 0 || c.readers.Load() > 0
}

// HostileImage is an upload an attacker could try, and what it must be refused for.
type HostileImage struct {
	Name   string
	Path   string
	Format string  // the format it is declared as
	Reason string  // a part of the refusal's reason
	Canary *Canary // a host file it names, if any, which nothing may open
}

// MaxVirtualSize is the virtual-size limit HostileImages assumes the store enforces.
const MaxVirtualSize = 1 << 30

// HostileImages makes, in a new directory, every kind of hostile disk image ring 0 must
// refuse: backing files of every spelling (the host's /etc/shadow, and canaries named by an
// absolute path, a relative one, a json: pseudo-URL, and with no backing format), an external
// data file, formats other than declared, a virtual size over MaxVirtualSize, a truncated
// qcow2, a qcow2 cut within its header, an encrypted one, an empty file, a raw file of
// partial sectors.
func HostileImages(t testing.TB) []HostileImage {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "enjin-hostile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := func(name string) string { return filepath.Join(dir, name) }
	var imgs []HostileImage
	add := func(name, format, reason string, c *Canary) {
		imgs = append(imgs, HostileImage{Name: name, Path: p(name), Format: format, Reason: reason, Canary: c})
	}
	backing := "it has a backing file"

	QemuImg(t, "create", "-q", "-f", "qcow2", "-b", "/etc/shadow", "-F", "raw", p("shadow.qcow2"), "64M")
	add("shadow.qcow2", "qcow2", backing, nil)

	abs := NewCanary(t, dir, "canary-abs")
	QemuImg(t, "create", "-q", "-f", "qcow2", "-u", "-b", abs.Path, "-F", "raw", p("abs.qcow2"), "64M")
	add("abs.qcow2", "qcow2", backing, abs)

	// Relative to wherever the image is read from, enough ".." reach / and then the canary.
	rel := NewCanary(t, dir, "canary-rel")
	QemuImg(t, "create", "-q", "-f", "qcow2", "-u", "-b", strings.Repeat("../", 16)+strings.TrimPrefix(rel.Path, "/"), "-F", "raw", p("rel.qcow2"), "64M")
	add("rel.qcow2", "qcow2", backing, rel)

	js := NewCanary(t, dir, "canary-json")
	QemuImg(t, "create", "-q", "-f", "qcow2", "-u", "-b", `json:{"driver":"raw","file":{"driver":"file","filename":"`+js.Path+`"}}`, "-F", "raw", p("json.qcow2"), "64M")
	add("json.qcow2", "qcow2", backing, js)

	// No backing format: whoever opens the backing file would probe it.
	probe := NewCanary(t, dir, "canary-probe")
	writeQcow2WithBacking(t, p("probe.qcow2"), probe.Path)
	add("probe.qcow2", "qcow2", backing, probe)

	// qemu-img create writes the data file; it becomes the canary after.
	QemuImg(t, "create", "-q", "-f", "qcow2", "-o", "data_file="+p("canary-data"), p("datafile.qcow2"), "64M")
	os.Remove(p("canary-data"))
	df := NewCanary(t, dir, "canary-data")
	add("datafile.qcow2", "qcow2", "external data file", df)

	raw := bytes.Repeat([]byte("enjin raw sector"), 1<<16) // 1 MiB
	write(t, p("raw.img"), raw)
	add("raw.img", "qcow2", "cannot read it as qcow2", nil)

	QemuImg(t, "convert", "-q", "-f", "raw", "-O", "qcow2", p("raw.img"), p("good.qcow2"))
	add("good.qcow2", "raw", "declared raw, but it starts with a qcow2 header", nil)

	QemuImg(t, "create", "-q", "-f", "vmdk", p("disk.vmdk"), "1M")
	add("disk.vmdk", "raw", "VMDK", nil)

	QemuImg(t, "create", "-q", "-f", "qcow2", p("big.qcow2"), "100T")
	add("big.qcow2", "qcow2", "virtual size", nil)

	truncated, err := os.ReadFile(p("good.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, p("truncated.qcow2"), truncated[:len(truncated)/3])
	add("truncated.qcow2", "qcow2", "truncated or damaged", nil)
	write(t, p("header.qcow2"), truncated[:100])
	add("header.qcow2", "qcow2", "cannot read it as qcow2", nil)

	// LUKS times its key derivation by the thread's CPU time, which a busy machine can leave
	// at 0 ms ("Unable to get accurate CPU usage"): try again.
	for try := 1; ; try++ {
		out, err := exec.CommandContext(t.Context(), "qemu-img", "create", "-q", "--object", "secret,id=s0,data=hunter2", "-f", "qcow2",
			"-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10", p("encrypted.qcow2"), "16M").CombinedOutput()
		if err == nil {
			break
		}
		if try == 5 || !bytes.Contains(out, []byte("accurate CPU usage")) {
			t.Fatalf("qemu-img create an encrypted qcow2: %v\n%s", err, out)
		}
	}
	add("encrypted.qcow2", "qcow2", "encrypted", nil)

	write(t, p("empty.img"), nil)
	add("empty.img", "raw", "empty", nil)
	write(t, p("empty.qcow2"), nil)
	add("empty.qcow2", "qcow2", "empty", nil)
	write(t, p("partial.img"), raw[:1000])
	add("partial.img", "raw", "512-byte sectors", nil)
	return imgs
}

// writeQcow2WithBacking makes a qcow2 naming backing with no backing format, which newer
// qemu-img refuses to create: it creates one with a format, then blanks the format's header
// extension (magic 0xE2792ACA) out of the file.
func writeQcow2WithBacking(t testing.TB, path, backing string) {
	t.Helper()
	QemuImg(t, "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "raw", path, "64M")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b[:4096], []byte{0xe2, 0x79, 0x2a, 0xca})
	if i < 0 {
		t.Fatalf("%s: no backing format extension", path)
	}
	copy(b[i:i+4], []byte{0x00, 0x00, 0x00, 0x00}) // an end-of-extensions marker: the rest is ignored
	write(t, path, b)
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
