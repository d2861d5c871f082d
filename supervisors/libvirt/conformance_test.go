package libvirt_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"enjin/supervisors/libvirt"
)

// A backend is a hypervisor the conformance suite runs against: libvirtd's fake, fast
// and shared by all connections, and QEMU (TCG here), real guests booting the boot sector.
type backend struct {
	name    string
	uri     string
	hotplug bool // the fake cannot attach or detach devices: it answers ErrUnsupported
}

var backends = []backend{
	{name: "fake", uri: libvirt.Test},
	{name: "qemu", uri: libvirt.System, hotplug: true},
}

// The conformance suite: each case runs against every backend, so the fake stays honest.
var conformance = []struct {
	name string
	run  func(t *testing.T, c *libvirt.Conn, b backend)
}{
	{"lifecycle", testLifecycle},
	{"list shows enjin's domains only", testList},
	{"foreign domains are left alone", testForeign},
	{"shutdown", testShutdown},
	{"reboot keeps it running", testReboot},
	{"undefine deletes owned files only", testUndefineFiles},
	{"define updates a definition", testRedefine},
	{"hot-plug", testHotplug},
	{"unknown domains", testUnknown},
}

func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			c := dial(t, b.uri)
			for _, tc := range conformance {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, c, b) })
			}
		})
	}
}

// defined defines a fresh boot-sector guest and undefines it after the test.
func defined(t *testing.T, c *libvirt.Conn, prefix string) libvirt.Domain {
	t.Helper()
	d := guest(t, unique(prefix))
	if err := c.Define(d); err != nil {
		t.Fatal(err)
	}
	cleanupDomain(t, c, d.Name)
	return d
}

func wantState(t *testing.T, c *libvirt.Conn, name string, want libvirt.State) {
	t.Helper()
	if got, err := c.State(name); err != nil || got != want {
		t.Fatalf("state of %s: got %v, %v want %v", name, got, err, want)
	}
}

func testLifecycle(t *testing.T, c *libvirt.Conn, b backend) {
	d := defined(t, c, "life")
	wantState(t, c, d.Name, libvirt.ShutOff)
	for range 2 { // starting a running domain does nothing
		if err := c.Start(d.Name); err != nil {
			t.Fatal(err)
		}
		wantState(t, c, d.Name, libvirt.Running)
	}
	if b.uri == libvirt.System {
		awaitMarker(t, d.ConsoleLog, 20*time.Second)
	}
	if log, err := c.ConsoleLog(d.Name); err != nil || log != d.ConsoleLog {
		t.Fatalf("console log: got %q, %v want %q", log, err, d.ConsoleLog)
	}
	for range 2 { // destroying a stopped domain does nothing
		if err := c.Destroy(d.Name); err != nil {
			t.Fatal(err)
		}
		wantState(t, c, d.Name, libvirt.ShutOff)
	}
	if err := c.Undefine(d.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.State(d.Name); !errors.Is(err, libvirt.ErrNotFound) {
		t.Fatalf("state after undefine: got %v want ErrNotFound", err)
	}
}

func testList(t *testing.T, c *libvirt.Conn, b backend) {
	d1, d2 := defined(t, c, "list"), defined(t, c, "list")
	if err := c.Start(d2.Name); err != nil {
		t.Fatal(err)
	}
	foreign := defineForeign(t, b.uri)
	infos, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]libvirt.Info{}
	for _, i := range infos {
		got[i.Name] = i
	}
	for _, want := range []struct {
		d     libvirt.Domain
		state libvirt.State
	}{{d1, libvirt.ShutOff}, {d2, libvirt.Running}} {
		i, ok := got[want.d.Name]
		if !ok {
			t.Fatalf("list: %s missing from %v", want.d.Name, infos)
		}
		wantMeta := want.d.Meta
		wantMeta.Owns = []string{want.d.Disks[0].Path}
		if i.State != want.state || len(i.UUID) != 36 || i.Meta.Tenant != wantMeta.Tenant ||
			i.Meta.VM != wantMeta.VM || i.Meta.Node != wantMeta.Node || !slices.Equal(i.Meta.Owns, wantMeta.Owns) {
			t.Errorf("list: got %+v want state %v, meta %+v", i, want.state, wantMeta)
		}
	}
	if _, ok := got[foreign]; ok {
		t.Errorf("list shows %s, which enjin did not define", foreign)
	}
}

// defineForeign defines a domain without enjin's metadata, as another tool on the host
// would, and removes it after the test.
func defineForeign(t *testing.T, uri string) string {
	t.Helper()
	l := raw(t, uri)
	name := unique("foreign")
	x := libvirtxml.Domain{Type: "qemu", Name: name,
		Memory: &libvirtxml.DomainMemory{Value: 16, Unit: "MiB"},
		OS:     &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{Arch: "x86_64", Type: "hvm"}}}
	s, err := x.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dom, err := l.DomainDefineXMLFlags(s, 0)
	if err != nil {
		t.Fatalf("define foreign domain: %v", err)
	}
	t.Cleanup(func() { l.DomainUndefineFlags(dom, 0) })
	return name
}

func testForeign(t *testing.T, c *libvirt.Conn, b backend) {
	name := defineForeign(t, b.uri)
	d := guest(t, name)
	checks := []struct {
		op  string
		err error
	}{
		{"define", c.Define(d)},
		{"start", c.Start(name)},
		{"destroy", c.Destroy(name)},
		{"undefine", c.Undefine(name)},
		{"attach", c.AttachNIC(name, libvirt.NIC{MAC: mac(), Tap: "enjforeign0"})},
	}
	for _, ch := range checks {
		if !errors.Is(ch.err, libvirt.ErrForeign) {
			t.Errorf("%s on a foreign domain: got %v want ErrForeign", ch.op, ch.err)
		}
	}
	if _, err := raw(t, b.uri).DomainLookupByName(name); err != nil {
		t.Errorf("foreign domain gone: %v", err)
	}
}

func testShutdown(t *testing.T, c *libvirt.Conn, b backend) {
	d := defined(t, c, "shut")
	// Stopped already: nothing to do, at once.
	if err := c.Shutdown(t.Context(), d.Name, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(d.Name); err != nil {
		t.Fatal(err)
	}
	if b.uri == libvirt.System {
		awaitMarker(t, d.ConsoleLog, 20*time.Second)
	}
	// The fake powers off at the button; the boot sector ignores it and is destroyed.
	const timeout = time.Second
	t0 := time.Now()
	if err := c.Shutdown(withTimeout(t, time.Minute), d.Name, timeout); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	wantState(t, c, d.Name, libvirt.ShutOff)
	if b.uri == libvirt.System && took < timeout {
		t.Errorf("shutdown of a guest that ignores ACPI took %v, less than the %v timeout", took, timeout)
	}
	t.Logf("shutdown took %v", took)
}

func testReboot(t *testing.T, c *libvirt.Conn, b backend) {
	d := defined(t, c, "reboot")
	if err := c.Start(d.Name); err != nil {
		t.Fatal(err)
	}
	if err := c.Reboot(d.Name); err != nil {
		t.Fatal(err)
	}
	wantState(t, c, d.Name, libvirt.Running)
}

func testUndefineFiles(t *testing.T, c *libvirt.Conn, b backend) {
	d := guest(t, unique("files"))
	kept := filepath.Join(images, d.Name+"-kept.qcow2")
	if err := libvirt.CreateVolume(t.Context(), kept, 1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(kept) })
	d.Disks = append(d.Disks, libvirt.Disk{Path: kept, Format: "qcow2", Target: "vdb"})
	if err := c.Define(d); err != nil {
		t.Fatal(err)
	}
	cleanupDomain(t, c, d.Name)
	if err := c.Start(d.Name); err != nil {
		t.Fatal(err)
	}
	if b.uri == libvirt.System {
		awaitMarker(t, d.ConsoleLog, 20*time.Second)
	}
	if err := c.Undefine(d.Name); err != nil { // running: destroyed first
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		want bool
	}{{d.Disks[0].Path, false}, {kept, true}, {base(t), true}} {
		if _, err := os.Stat(f.path); (err == nil) != f.want {
			t.Errorf("after undefine, %s exists: got %v want %v", f.path, err == nil, f.want)
		}
	}
	if b.uri == libvirt.System {
		if _, err := os.Stat(d.ConsoleLog); err != nil {
			t.Errorf("console log: %v", err)
		}
		// The shared base stays root's and read-only to QEMU (libvirt was told not to relabel it).
		if st, err := os.Stat(base(t)); err != nil || st.Mode().Perm() != 0o644 || !ownedByRoot(st) {
			t.Errorf("base after use: %v, %v; want root's, 0644", st.Mode(), err)
		}
	}
}

func testRedefine(t *testing.T, c *libvirt.Conn, b backend) {
	d := defined(t, c, "redef")
	d.MemoryMiB = 48
	if err := c.Define(d); err != nil {
		t.Fatal(err)
	}
	s, err := c.XML(d.Name, false)
	if err != nil {
		t.Fatal(err)
	}
	var x libvirtxml.Domain
	if err := x.Unmarshal(s); err != nil {
		t.Fatal(err)
	}
	if got := x.Memory.Value; got != 48*1024 || x.Memory.Unit != "KiB" {
		t.Errorf("memory after redefine: got %d %s want %d KiB", got, x.Memory.Unit, 48*1024)
	}
}

func testHotplug(t *testing.T, c *libvirt.Conn, b backend) {
	d := defined(t, c, "plug")
	if err := c.Start(d.Name); err != nil {
		t.Fatal(err)
	}
	nic := libvirt.NIC{MAC: mac(), Tap: tapName()}
	vol := filepath.Join(images, d.Name+"-vdb.qcow2")
	if err := libvirt.CreateVolume(t.Context(), vol, 1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(vol) }) // the fake never takes it
	disk := libvirt.Disk{Path: vol, Format: "qcow2", Target: "vdb", Owned: true}
	errNIC, errDisk := c.AttachNIC(d.Name, nic), c.AttachDisk(d.Name, disk)
	if !b.hotplug {
		for _, err := range []error{errNIC, errDisk} {
			if !errors.Is(err, libvirt.ErrUnsupported) {
				t.Errorf("attach on %s: got %v want ErrUnsupported", b.uri, err)
			}
		}
		return
	}
	if errNIC != nil || errDisk != nil {
		t.Fatal(errNIC, errDisk)
	}
	for _, live := range []bool{true, false} {
		macs, disks := devices(t, c, d.Name, live)
		if !slices.Contains(macs, nic.MAC+" on "+nic.Tap) || !slices.Contains(disks, "vdb "+vol) {
			t.Errorf("live=%v: after attach, got nics %v disks %v want %s on %s, vdb %s",
				live, macs, disks, nic.MAC, nic.Tap, vol)
		}
	}
	if !slices.Contains(taps(t), nic.Tap) {
		t.Errorf("tap %s missing after attach: %v", nic.Tap, taps(t))
	}
	// The boot sector never acknowledges an unplug: the definition loses the devices, the
	// running guest keeps them until it stops.
	if err := c.DetachNIC(d.Name, nic.MAC); err != nil {
		t.Fatal(err)
	}
	if err := c.DetachDisk(d.Name, "vdb"); err != nil {
		t.Fatal(err)
	}
	if macs, disks := devices(t, c, d.Name, false); len(macs) != 0 || len(disks) != 1 {
		t.Errorf("definition after detach: got nics %v disks %v want none and vda", macs, disks)
	}
	if err := c.Undefine(d.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(vol); err == nil {
		t.Errorf("owned volume %s survived undefine", vol)
	}
	if slices.Contains(taps(t), nic.Tap) {
		t.Errorf("tap %s survived the guest", nic.Tap)
	}
}

func testUnknown(t *testing.T, c *libvirt.Conn, b backend) {
	name := unique("nosuch")
	for op, err := range map[string]error{
		"start":    c.Start(name),
		"destroy":  c.Destroy(name),
		"undefine": c.Undefine(name),
		"detach":   c.DetachDisk(name, "vdb"),
	} {
		if !errors.Is(err, libvirt.ErrNotFound) {
			t.Errorf("%s of an unknown domain: got %v want ErrNotFound", op, err)
		}
	}
	if _, err := c.State(name); !errors.Is(err, libvirt.ErrNotFound) {
		t.Errorf("state of an unknown domain: got %v want ErrNotFound", err)
	}
}

// devices lists the domain's NICs ("mac on tap") and disks ("target path"), as the running
// guest has them if live is true, else as its definition does.
func devices(t *testing.T, c *libvirt.Conn, name string, live bool) (nics, disks []string) {
	t.Helper()
	s, err := c.XML(name, live)
	if err != nil {
		t.Fatal(err)
	}
	var x libvirtxml.Domain
	if err := x.Unmarshal(s); err != nil {
		t.Fatal(err)
	}
	for _, i := range x.Devices.Interfaces {
		tap := ""
		if i.Target != nil {
			tap = i.Target.Dev
		}
		nics = append(nics, i.MAC.Address+" on "+tap)
	}
	for _, k := range x.Devices.Disks {
		disks = append(disks, k.Target.Dev+" "+k.Source.File.File)
	}
	return nics, disks
}
