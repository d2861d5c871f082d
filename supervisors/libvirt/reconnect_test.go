package libvirt_test

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"enjin/supervisors/libvirt"
	"enjin/test/harness"
)

// libvirtd stops (SIGTERM, as an upgrade would) and comes back: the same Conn fails calls
// with ErrDisconnected meanwhile and works again by itself, and the guest kept running.
func TestReconnectAfterLibvirtdRestart(t *testing.T) {
	c, hold := dialHeld(t, libvirt.System)
	d := guest(t, unique("survivor"))
	if err := c.Define(d); err != nil {
		t.Fatal(err)
	}
	cleanupDomain(t, c, d.Name)
	if err := c.Start(d.Name); err != nil {
		t.Fatal(err)
	}
	awaitMarker(t, d.ConsoleLog, 20*time.Second)

	hold.Exclusive(t) // no other package's test may run a guest while libvirtd is away
	pid := libvirtdPID(t)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("../../deploy/libvirt.sh").Run() }) // never leave it down
	harness.Eventually(t, 30*time.Second, func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH },
		"libvirtd %d still running 30 s after SIGTERM", pid)
	harness.Eventually(t, 5*time.Second, func() bool { return !c.Connected() }, "Conn noticed")
	for op, call := range map[string]func() error{
		"list":  func() error { _, err := c.List(); return err },
		"state": func() error { _, err := c.State(d.Name); return err },
		"start": func() error { return c.Start(d.Name) },
	} {
		if err := call(); !errors.Is(err, libvirt.ErrDisconnected) {
			t.Errorf("%s while libvirtd is down: got %v want ErrDisconnected", op, err)
		}
	}

	t0 := time.Now()
	if out, err := exec.Command("../../deploy/libvirt.sh").CombinedOutput(); err != nil {
		t.Fatalf("deploy/libvirt.sh: %v\n%s", err, out)
	}
	up := time.Since(t0)
	harness.Eventually(t, 10*time.Second, func() bool { _, err := c.List(); return err == nil },
		"the Conn working again after libvirtd restarted")
	t.Logf("libvirtd answered %v after deploy/libvirt.sh started it; the Conn worked again %v after that",
		up.Round(time.Millisecond), (time.Since(t0) - up).Round(time.Millisecond))
	wantState(t, c, d.Name, libvirt.Running)
	hold.Shared(t)
}

func libvirtdPID(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/run/libvirtd.pid")
	if err != nil {
		t.Fatalf("libvirtd's pid file (deploy/libvirt.sh starts it with -p /run/libvirtd.pid): %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
