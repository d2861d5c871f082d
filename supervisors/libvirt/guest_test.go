package libvirt_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"libvirt.org/go/libvirtxml"

	"enjin/supervisors/libvirt"
)

// A real guest under TCG, from definition to nothing left: the boot sector prints its
// marker, a NIC is plugged into a bridge while it runs, it ignores the power button and is
// destroyed after the timeout, and undefining it leaves no domain, overlay or tap.
func TestGuestOnQEMU(t *testing.T) {
	br := bridge(t)
	before := tapsOn(t, br)
	c := dial(t, libvirt.System)
	d := guest(t, unique("vm"))
	// A secret for the guest, passed by fw_cfg: root's, 0600, and still QEMU reads it.
	secret := filepath.Join(images, d.Name+".creds")
	if err := os.WriteFile(secret, []byte("not on any command line"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.FwCfg = []libvirt.FwCfg{{Name: "creds", File: secret}}
	if err := c.Define(d); err != nil {
		t.Fatal(err)
	}
	cleanupDomain(t, c, d.Name)

	if err := c.Start(d.Name); err != nil {
		t.Fatal(err)
	}
	awaitMarker(t, d.ConsoleLog, 20*time.Second)
	wantState(t, c, d.Name, libvirt.Running)
	checkQEMUUser(t, d.Name)

	nic := libvirt.NIC{MAC: mac(), Bridge: br}
	if err := c.AttachNIC(d.Name, nic); err != nil {
		t.Fatal(err)
	}
	tap := liveTap(t, c, d.Name, nic.MAC, br)
	link, err := netlink.LinkByName(tap)
	if err != nil {
		t.Fatalf("tap %s of the plugged NIC: %v", tap, err)
	}
	brLink, err := netlink.LinkByName(br)
	if err != nil {
		t.Fatal(err)
	}
	if link.Attrs().MasterIndex != brLink.Attrs().Index {
		t.Errorf("tap %s: got master index %d want bridge %s (%d)", tap, link.Attrs().MasterIndex, br, brLink.Attrs().Index)
	}

	const timeout = time.Second
	t0 := time.Now()
	if err := c.Shutdown(withTimeout(t, time.Minute), d.Name, timeout); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took < timeout {
		t.Errorf("shutdown took %v: the boot sector cannot have obeyed the power button", took)
	}
	wantState(t, c, d.Name, libvirt.ShutOff)

	if err := c.Undefine(d.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.State(d.Name); !errors.Is(err, libvirt.ErrNotFound) {
		t.Errorf("state after undefine: got %v want ErrNotFound", err)
	}
	infos, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(infos, func(i libvirt.Info) bool { return i.Name == d.Name }) {
		t.Errorf("list still shows %s", d.Name)
	}
	if _, err := os.Stat(d.Disks[0].Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("overlay %s after undefine: got %v want it gone", d.Disks[0].Path, err)
	}
	if after := tapsOn(t, br); !slices.Equal(after, before) {
		t.Errorf("taps: got %v after want %v as before", after, before)
	}
	if _, err := os.Stat(secret); err != nil {
		t.Errorf("the fw_cfg file is the caller's and stays: %v", err)
	}
}

// liveTap returns the tap the running guest's NIC with mac is plugged into, checking it is
// on bridge br.
func liveTap(t *testing.T, c *libvirt.Conn, name, mac, br string) string {
	t.Helper()
	s, err := c.XML(name, true)
	if err != nil {
		t.Fatal(err)
	}
	var x libvirtxml.Domain
	if err := x.Unmarshal(s); err != nil {
		t.Fatal(err)
	}
	for _, i := range x.Devices.Interfaces {
		if i.MAC == nil || i.MAC.Address != mac {
			continue
		}
		if i.Source == nil || i.Source.Bridge == nil || i.Source.Bridge.Bridge != br || i.Target == nil {
			t.Fatalf("live NIC %s: got source %+v target %+v want bridge %s and a tap", mac, i.Source, i.Target, br)
		}
		return i.Target.Dev
	}
	t.Fatalf("live XML has no NIC %s:\n%s", mac, s)
	return ""
}

// checkQEMUUser makes sure the guest's QEMU does not run as root.
func checkQEMUUser(t *testing.T, name string) {
	t.Helper()
	b, err := os.ReadFile("/run/libvirt/qemu/" + name + ".pid")
	if err != nil {
		t.Fatalf("qemu pid file: %v", err)
	}
	status, err := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if strings.HasPrefix(line, "Uid:") && strings.Fields(line)[1] == "0" {
			t.Errorf("qemu runs as root: %s", strings.TrimSpace(line))
		}
	}
}
