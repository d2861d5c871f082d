package libvirt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/vishvananda/netlink"

	"enjin"
	"enjin/supervisors/libvirt"
	"enjin/test/harness"
)

// images is a directory for this run's disk images and console logs. QEMU runs as
// libvirt-qemu, so it must be able to pass through it (0711); a t.TempDir (0700) would not do.
var images string

func TestMain(m *testing.M) {
	// The tests run against the real libvirtd; the script starts it if it is not up (and
	// installs it on a fresh machine), quietly when there is nothing to do.
	if out, err := exec.Command("../../deploy/libvirt.sh").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "libvirtd is not running and deploy/libvirt.sh could not start it: %v\n%s", err, out)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("/tmp", "enjin-libvirt-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o711)
	images = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// dial connects to uri for one test and closes the connection after it.
func dial(t *testing.T, uri string) *libvirt.Conn {
	t.Helper()
	c, _ := dialHeld(t, uri)
	return c
}

// dialHeld dials, holding libvirtd shared until the test ends (see harness.Libvirtd), and
// returns the hold too, for a test that restarts libvirtd.
func dialHeld(t *testing.T, uri string) (*libvirt.Conn, *harness.Libvirtd) {
	t.Helper()
	hold := harness.LibvirtdShared(t)
	c, err := libvirt.Dial(t.Context(), uri, harness.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, hold
}

// raw is a plain go-libvirt connection, for doing what enjin's Conn refuses to (defining a
// domain without enjin's metadata) and for looking behind its back.
func raw(t *testing.T, uri string) *golibvirt.Libvirt {
	t.Helper()
	l := golibvirt.NewWithDialer(dialers.NewLocal())
	if err := l.ConnectToURI(golibvirt.ConnectURI(uri)); err != nil {
		t.Fatalf("raw dial %s: %v", uri, err)
	}
	t.Cleanup(func() { l.Disconnect() })
	return l
}

var seq atomic.Uint32

// unique makes a name no other test, here or in another run, is using: the fake
// hypervisor's state is shared by every connection to it.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
}

// bootSector is a 512-byte x86 boot sector that writes marker and CRLF to the first serial
// port (COM1, 0x3f8) and halts forever, with interrupts off: it ignores ACPI, like a hung
// guest would.
func bootSector(marker string) []byte {
	const msgAt = 23 // the message follows the code below
	code := []byte{
		0x31, 0xC0, // xor ax, ax
		0x8E, 0xD8, // mov ds, ax
		0xFC,             // cld
		0xBA, 0xF8, 0x03, // mov dx, 0x3f8
		0xBE, msgAt, 0x7C, // mov si, 0x7c00+msgAt
		0xAC,       // next: lodsb
		0x84, 0xC0, // test al, al
		0x74, 0x03, // jz halt
		0xEE,       // out dx, al
		0xEB, 0xF8, // jmp next
		0xFA,       // halt: cli
		0xF4,       // hlt
		0xEB, 0xFC, // jmp halt
	}
	b := make([]byte, 512)
	copy(b, code)
	copy(b[msgAt:], marker+"\r\n\x00")
	b[510], b[511] = 0x55, 0xAA
	return b
}

// marker is what the test guests print.
const marker = "ENJIN-BOOT-SECTOR-OK"

var baseImage string

// base returns a qcow2 image of the boot sector, 1 MiB (SeaBIOS does not boot a virtio
// disk of one sector), made once per run and left readable to QEMU's user, as Overlay asks.
func base(t *testing.T) string {
	t.Helper()
	if baseImage != "" {
		return baseImage
	}
	rawPath := filepath.Join(images, "boot.raw")
	img := make([]byte, 1<<20)
	copy(img, bootSector(marker))
	if err := os.WriteFile(rawPath, img, 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(images, "base.qcow2")
	if out, err := exec.Command("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", rawPath, p).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	baseImage = p
	return p
}

// guest returns a Domain named name that boots the boot sector from an overlay of its own.
func guest(t *testing.T, name string) libvirt.Domain {
	t.Helper()
	ov := filepath.Join(images, name+".qcow2")
	if err := libvirt.Overlay(t.Context(), base(t), ov, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(ov) }) // for tests that never hand it to a domain
	return libvirt.Domain{
		Name: name, VCPUs: 1, MemoryMiB: 32, KVM: libvirt.HasKVM(),
		Disks:      []libvirt.Disk{{Path: ov, Format: "qcow2", Target: "vda", Base: base(t), Owned: true}},
		ConsoleLog: filepath.Join(images, name+".log"),
		Meta:       libvirt.Meta{Tenant: "t-test", VM: name, Node: enjin.NodeID("n-" + name)},
	}
}

// cleanupDomain undefines name after the test, whatever state it was left in.
func cleanupDomain(t *testing.T, c *libvirt.Conn, name string) {
	t.Cleanup(func() {
		if err := c.Undefine(name); err != nil && !errors.Is(err, libvirt.ErrNotFound) {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// awaitMarker waits until the console log holds the marker and returns when it saw it.
func awaitMarker(t *testing.T, log string, timeout time.Duration) time.Time {
	t.Helper()
	var seen time.Time
	ok := pollFast(timeout, func() bool {
		b, _ := os.ReadFile(log)
		if bytes.Contains(b, []byte(marker)) {
			seen = time.Now()
			return true
		}
		return false
	})
	if !ok {
		b, _ := os.ReadFile(log)
		t.Fatalf("no %q in %s after %v; it holds %q", marker, log, timeout, b)
	}
	return seen
}

// pollFast is harness.Poll at a fixed 2 ms, for latencies measured in milliseconds.
func pollFast(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// taps lists the host's tun/tap devices.
func taps(t *testing.T) []string {
	t.Helper()
	return tapsOn(t, "")
}

// tapsOn lists the tap devices on bridge br (every tap when br is ""): what this test's
// guests can leave behind, apart from the other packages' guests that share the host.
func tapsOn(t *testing.T, br string) []string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	master := 0
	if br != "" {
		l, err := netlink.LinkByName(br)
		if err != nil {
			t.Fatal(err)
		}
		master = l.Attrs().Index
	}
	var out []string
	for _, l := range links {
		if l.Type() == "tuntap" && (master == 0 || l.Attrs().MasterIndex == master) {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// bridge creates a Linux bridge for one test, with an address from 100.64.0.0/10, and
// deletes it after.
func bridge(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("enjlv%d", os.Getpid()%100000)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil {
		t.Fatalf("add bridge %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := netlink.LinkDel(br); err != nil {
			t.Errorf("delete bridge %s: %v", name, err)
		}
	})
	p := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64 + byte(os.Getpid()%64), byte(seq.Add(1)), 1}), 24)
	addr, err := netlink.ParseAddr(p.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(br, addr); err != nil {
		t.Fatalf("address %s on %s: %v", p, name, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	return name
}

// mac is a locally administered unicast address no other test uses.
func mac() string {
	n := seq.Add(1)
	pid := os.Getpid()
	return fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", byte(pid>>8), byte(pid), byte(n>>8), byte(n))
}

// withTimeout is t.Context with a deadline.
func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// tapName is a tap device name no other test uses, within the 15-byte limit.
func tapName() string {
	return fmt.Sprintf("ejt%d-%d", os.Getpid()%100000, seq.Add(1)%100000)
}

func ownedByRoot(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid == 0 && st.Gid == 0
}
