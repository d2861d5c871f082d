package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/guest"
	"enjin/keys"
	"enjin/test/harness"
)

// TestGuestImage builds the guest image with deploy/guest-image.sh (kernel and busybox from
// Debian's packages, cached across runs) and boots it under TCG as ring 1 will, but straight
// from qemu with user-mode networking: nothing on the host's network changes.
func TestGuestImage(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatal("no qemu-system-x86_64: test/run installs qemu-system-x86")
	}
	img := buildGuestImage(t)
	t.Run("metadata", func(t *testing.T) { testGuestWithMeta(t, img) })
	t.Run("no metadata", func(t *testing.T) { testGuestWithoutMeta(t, img) })
}

// testGuestWithMeta boots a VM whose metadata (in fw_cfg) gives it a static address and points
// it at a broker on the host's loopback, which a slirp guest reaches as 10.0.2.2. The guest
// must say it is up on the serial console, serve its hostname on port 80, send heartbeats that
// verify against its attestation key, and power off cleanly, saying it is stopping, when the
// ACPI power button is pressed.
func testGuestWithMeta(t *testing.T, img string) {
	c := harness.StartBroker(t)
	iss, _ := c.Tenant(t, "acme")
	cr, err := iss.Mint(keys.UserRequest{Name: "vm-1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	att, err := keys.NewAttestation()
	if err != nil {
		t.Fatal(err)
	}
	msgs := tenantObservations(t, c, "acme")
	ver := bus.NewVerifier(0)
	if err := ver.Register("vm-1", att.Public(), 0); err != nil {
		t.Fatal(err)
	}

	_, brokerPort, _ := strings.Cut(strings.TrimPrefix(c.URL, "nats://"), ":")
	file, _ := cr.File()
	meta := &guest.Meta{
		Node: "vm-1", Tenant: "acme", Name: "test vm", Hostname: "web-1",
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.2.15/24")}, Gateway: netip.MustParseAddr("10.0.2.2"),
		NATS:  []string{"nats://10.0.2.2:" + brokerPort}, // slirp's alias for the host's loopback
		Creds: string(file), Attest: att.SeedText(), Heartbeat: guest.Duration(time.Second),
	}
	vm := bootGuest(t, img, meta)
	vm.waitUp(t)
	vm.waitHTTP(t, "web-1\n")

	obs, when := nextObservation(t, msgs, ver, cr.PublicKey, 60*time.Second, vm.console)
	t.Logf("qemu start → first verified heartbeat: %v (%+v)", when.Sub(vm.started).Round(time.Millisecond), obs)
	if obs.Node != "vm-1" || obs.Ring != enjin.Ring2 || obs.State != enjin.StateUp || obs.UptimeSec <= 0 || obs.MemBytes == 0 {
		t.Errorf("heartbeat: got %+v, want vm-1 in ring 2, up, with the guest's uptime and memory", obs)
	}

	pressed := time.Now()
	vm.powerButton(t)
	for obs.State != enjin.StateStopping {
		if time.Since(pressed) > 30*time.Second {
			t.Fatalf("the guest did not say it was stopping within 30s of the power button:\n%s", vm.console)
		}
		obs, _ = nextObservation(t, msgs, ver, cr.PublicKey, 30*time.Second, vm.console)
	}
	vm.waitPoweredOff(t, pressed)
}

// testGuestWithoutMeta boots a VM the host gave no metadata: it takes its address by DHCP,
// serves its default name, runs no agent, and still powers off on the power button.
func testGuestWithoutMeta(t *testing.T, img string) {
	vm := bootGuest(t, img, nil)
	vm.waitUp(t)
	vm.waitHTTP(t, "enjin-guest\n")
	if out := vm.console.String(); !strings.Contains(out, "enjin-guest: no metadata in fw_cfg") ||
		!strings.Contains(out, "enjin-guest: DHCP lease 10.0.2.15/24 on eth0") {
		t.Errorf("the console does not show the DHCP fallback:\n%s", out)
	}
	pressed := time.Now()
	vm.powerButton(t)
	vm.waitPoweredOff(t, pressed)
}

// buildGuestImage has deploy/guest-image.sh build the guest (once per test process, see
// builtImage). The packages it fetches stay in its cache (/var/cache/enjin-guest), so only
// the first run downloads.
func buildGuestImage(t *testing.T) string {
	t.Helper()
	start := time.Now()
	img := guestImage(t)
	for _, f := range []string{"vmlinuz", "initrd.img"} {
		fi, err := os.Stat(filepath.Join(img, f))
		if err != nil || fi.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
		t.Logf("%s: %.1f MiB", f, float64(fi.Size())/(1<<20))
	}
	t.Logf("guest image ready in %v", time.Since(start).Round(time.Millisecond))
	return img
}

// tenantObservations subscribes as a ring 1 node to a tenant's ring 2 observations.
func tenantObservations(t *testing.T, c *harness.Cloud, tenant enjin.TenantID) chan *nats.Msg {
	t.Helper()
	perms := bus.Ring1NodePerms("host-a")
	perms.SubAllow = append(perms.SubAllow, bus.R1FromTenantObs(tenant))
	nc := c.Connect(t, c.Mint(t, keys.RING1, keys.UserRequest{Name: "host-a", Perms: perms}))
	msgs := make(chan *nats.Msg, 1024)
	if _, err := nc.ChanSubscribe(bus.R1FromTenantObs(tenant), msgs); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// nextObservation waits for the next observation from the user with key user, verifies it as
// ring 1 would, and returns it with the time it arrived.
func nextObservation(t *testing.T, msgs chan *nats.Msg, v *bus.Verifier, user string, d time.Duration, console fmt.Stringer) (enjin.Observation, time.Time) {
	t.Helper()
	select {
	case m := <-msgs:
		now := time.Now()
		if want := "r1.from.acme." + user + ".obs"; m.Subject != want {
			t.Fatalf("observation on %s, want %s", m.Subject, want)
		}
		if _, err := v.Verify("vm-1", m.Header, m.Data, now); err != nil {
			t.Fatalf("the guest's heartbeat does not verify: %v", err)
		}
		var obs enjin.Observation
		if err := json.Unmarshal(m.Data, &obs); err != nil {
			t.Fatal(err)
		}
		return obs, now
	case <-time.After(d):
		t.Fatalf("no heartbeat from the guest within %v:\n%s", d, console)
		return enjin.Observation{}, time.Time{}
	}
}

func httpBody(url string) string {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return string(b)
}

// testVM is a qemu process booting the guest image.
type testVM struct {
	started  time.Time
	console  *console
	httpPort int
	qmp      string
	exited   chan struct{}
}

// bootGuest starts qemu on the image, with meta in fw_cfg unless it is nil; qemu is killed at
// cleanup.
func bootGuest(t *testing.T, img string, meta *guest.Meta) *testVM {
	t.Helper()
	dir := t.TempDir()
	vm := &testVM{console: &console{}, httpPort: harness.FreePort(t), qmp: filepath.Join(dir, "qmp.sock"), exited: make(chan struct{})}
	args := []string{"-machine", "q35", "-accel", "tcg", "-m", "256", "-nographic",
		"-kernel", filepath.Join(img, "vmlinuz"), "-initrd", filepath.Join(img, "initrd.img"),
		"-append", "console=ttyS0 quiet panic=-1",
		"-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:" + strconv.Itoa(vm.httpPort) + "-:80",
		"-device", "virtio-net-pci,netdev=n0,romfile=", // no iPXE: the kernel is given
		"-no-reboot", "-qmp", "unix:" + vm.qmp + ",server=on,wait=off"}
	if meta != nil {
		b, err := json.Marshal(meta)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, "meta.json")
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-fw_cfg", "name="+guest.FwCfgName+",file="+file)
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	cmd.Stdout, cmd.Stderr = vm.console, vm.console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	vm.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	go func() { // ends when qemu exits: powered off, or killed at cleanup
		cmd.Wait()
		close(vm.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-vm.exited
		if t.Failed() {
			t.Logf("serial console:\n%s", vm.console)
		}
	})
	return vm
}

// waitUp waits for the guest's marker on the serial console.
func (vm *testVM) waitUp(t *testing.T) {
	t.Helper()
	at, ok := vm.console.waitFor("enjin-guest: up", 60*time.Second)
	if !ok {
		t.Fatal("no \"enjin-guest: up\" on the serial console within 60s")
	}
	t.Logf("qemu start → enjin-guest: up: %v", at.Sub(vm.started).Round(time.Millisecond))
}

// waitHTTP waits for the guest's port 80 to answer with want.
func (vm *testVM) waitHTTP(t *testing.T, want string) {
	t.Helper()
	body := ""
	harness.Eventually(t, 20*time.Second, func() bool {
		body = httpBody("http://127.0.0.1:" + strconv.Itoa(vm.httpPort) + "/")
		return body == want
	}, "HTTP on the guest's port 80: got %q, want %q", body, want)
}

// waitPoweredOff waits for qemu to exit after the guest powered itself off.
func (vm *testVM) waitPoweredOff(t *testing.T, pressed time.Time) {
	t.Helper()
	select {
	case <-vm.exited:
		t.Logf("power button → qemu exited: %v", time.Since(pressed).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("the guest did not power off within 30s of the power button")
	}
	if !strings.Contains(vm.console.String(), "enjin-guest: powering off") {
		t.Error("the console does not show the guest powering off")
	}
}

// powerButton presses the VM's ACPI power button through QMP, as `virsh shutdown` does.
func (vm *testVM) powerButton(t *testing.T) {
	t.Helper()
	conn, err := net.DialTimeout("unix", vm.qmp, 5*time.Second)
	if err != nil {
		t.Fatalf("qmp: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if _, err := r.ReadString('\n'); err != nil { // the greeting
		t.Fatalf("qmp greeting: %v", err)
	}
	for _, c := range []string{"qmp_capabilities", "system_powerdown"} {
		fmt.Fprintf(conn, `{"execute":%q}`+"\n", c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("qmp %s: %v", c, err)
			}
			if strings.Contains(line, `"return"`) {
				break
			}
			if strings.Contains(line, `"error"`) {
				t.Fatalf("qmp %s: %s", c, line)
			}
		}
	}
}

// console collects what the VM writes on its serial console.
type console struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	return len(p), nil
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// waitFor waits up to d for marker to appear and returns when it was first seen.
func (c *console) waitFor(marker string, d time.Duration) (time.Time, bool) {
	var at time.Time
	ok := harness.Poll(d, func() bool {
		if strings.Contains(c.String(), marker) {
			at = time.Now()
			return true
		}
		return false
	})
	return at, ok
}
