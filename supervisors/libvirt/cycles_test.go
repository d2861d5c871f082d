package libvirt_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"enjin/supervisors/libvirt"
)

// leftovers counts what a guest's life could leave behind on the host.
type leftovers struct {
	domains, overlays, taps int
}

// count counts this test process's leftovers: its domains, its overlays and the taps on its
// bridge br. Other packages' tests run guests on the same libvirtd at the same time.
func count(t *testing.T, uri, br string) leftovers {
	t.Helper()
	doms, _, err := raw(t, uri).ConnectListAllDomains(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours := fmt.Sprintf("-%d-", os.Getpid()) // see unique
	doms = slices.DeleteFunc(doms, func(d golibvirt.Domain) bool { return !strings.Contains(d.Name, ours) })
	ovs, err := filepath.Glob(filepath.Join(images, "*.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	ovs = slices.DeleteFunc(ovs, func(p string) bool { return p == base(t) })
	return leftovers{domains: len(doms), overlays: len(ovs), taps: len(tapsOn(t, br))}
}

// Twenty lives of a boot-sector guest with a NIC on a bridge: define, start, its marker,
// destroy, undefine. Nothing may pile up.
func TestNoLeaksOver20Cycles(t *testing.T) {
	const cycles = 20
	br := bridge(t)
	c := dial(t, libvirt.System)
	before := count(t, libvirt.System, br)
	var took, booted, stopped []time.Duration
	for range cycles {
		t0 := time.Now()
		d := guest(t, unique("cycle"))
		d.NICs = []libvirt.NIC{{MAC: mac(), Bridge: br}}
		if err := c.Define(d); err != nil {
			t.Fatal(err)
		}
		cleanupDomain(t, c, d.Name)
		if err := c.Start(d.Name); err != nil {
			t.Fatal(err)
		}
		t1 := awaitMarker(t, d.ConsoleLog, 20*time.Second)
		if err := c.Destroy(d.Name); err != nil {
			t.Fatal(err)
		}
		t2 := time.Now()
		if err := c.Undefine(d.Name); err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(t0))
		booted, stopped = append(booted, t1.Sub(t0)), append(stopped, t2.Sub(t1))
		os.Remove(d.ConsoleLog) // the caller's to remove
	}
	after := count(t, libvirt.System, br)
	t.Logf("%d cycles: before %+v, after %+v", cycles, before, after)
	t.Logf("per cycle p50 %v, max %v, mean %v; of which overlay+define+start to marker p50 %v, destroy p50 %v",
		percentile(took, 50), slices.Max(took), mean(took), percentile(booted, 50), percentile(stopped, 50))
	if after != before {
		t.Errorf("leftovers: got %+v after want %+v as before", after, before)
	}
}

// How much libvirt adds to a guest's start: define+start until the boot sector's marker,
// against QEMU started directly on the same kind of overlay, alternating, ten of each.
func TestMarkerLatency(t *testing.T) {
	const runs = 10
	c := dial(t, libvirt.System)
	var viaLibvirt, bare []time.Duration
	for range runs {
		d := guest(t, unique("lat"))
		t0 := time.Now()
		if err := c.Define(d); err != nil {
			t.Fatal(err)
		}
		cleanupDomain(t, c, d.Name)
		if err := c.Start(d.Name); err != nil {
			t.Fatal(err)
		}
		viaLibvirt = append(viaLibvirt, awaitMarker(t, d.ConsoleLog, 20*time.Second).Sub(t0))
		if err := c.Undefine(d.Name); err != nil {
			t.Fatal(err)
		}
		bare = append(bare, bareQEMU(t))
	}
	lv, q := percentile(viaLibvirt, 50), percentile(bare, 50)
	t.Logf("define+start until the serial marker, p50 of %d: libvirt %v, bare qemu-system-x86_64 %v, ratio %.2f",
		runs, lv.Round(time.Millisecond), q.Round(time.Millisecond), float64(lv)/float64(q))
	t.Logf("libvirt: %v", viaLibvirt)
	t.Logf("bare:    %v", bare)
}

// bareQEMU starts QEMU by hand on an overlay of the boot sector, as libvirt would (TCG, a
// virtio disk, the serial port to a file), and returns how long its marker took.
func bareQEMU(t *testing.T) time.Duration {
	t.Helper()
	name := unique("bare")
	ov := filepath.Join(images, name+".qcow2")
	if err := libvirt.Overlay(t.Context(), base(t), ov, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(ov)
	log := filepath.Join(images, name+".log")
	defer os.Remove(log)
	accel := "tcg"
	if libvirt.HasKVM() {
		accel = "kvm"
	}
	t0 := time.Now()
	cmd := exec.CommandContext(t.Context(), "qemu-system-x86_64", "-machine", "pc,accel="+accel,
		"-m", "32", "-nodefaults", "-display", "none", "-no-user-config",
		"-serial", "file:"+log, "-drive", "file="+ov+",format=qcow2,if=virtio")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	return awaitMarker(t, log, 20*time.Second).Sub(t0)
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}
