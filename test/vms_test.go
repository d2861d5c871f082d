package test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"enjin"
	"enjin/test/harness"
)

// TestVMs runs VMs through `enjin up` and the CLI: a kernel image built from Debian's packages
// is uploaded, a VM made from it signs heartbeats that ring 0 stores as its own, serves its
// host, stops, starts, reboots, takes a NIC while running, and leaves nothing when destroyed;
// a volume carries data from one VM to the next; ten create/destroy cycles leak nothing;
// VMs outlive a SIGKILLed ring 1, which adopts them; and ring 1 reconnects to a restarted
// libvirtd.
func TestVMs(t *testing.T) {
	hold := harness.LibvirtdShared(t)
	c := newCloud(t)
	c.start()
	img := guestImage(t)
	c.cli("tenants", "create", "acme")
	c.cli("images", "upload", "--kernel", filepath.Join(img, "vmlinuz"), "--initrd", filepath.Join(img, "initrd.img"), "--name", "guest", "-q")
	t.Cleanup(func() { c.destroyAllVMs("acme") })

	// Its user data watches, in the background, for a second NIC and says so on the console.
	watch := `( while [ ! -e /sys/class/net/eth1 ]; do sleep 0.2; done; ` +
		`echo "hot-added: eth1 $(cat /sys/class/net/eth1/address)" >/dev/console ) >/dev/null 2>&1 &`
	t0 := time.Now()
	vm := c.createVM("acme/vm1", "--user-data", watch)
	if vm.ObservedState != "running" || len(vm.Addresses) != 1 {
		t.Fatalf("created: %+v", vm)
	}
	c.waitGuestHTTP(vm.Addresses[0], "vm1\n")
	c.waitOwnObservation(t, vm.ID)
	t.Logf("vms create → the guest's own signed heartbeat stored in ring 0: %v", time.Since(t0).Round(time.Millisecond))
	if out := c.cli("verify"); !strings.Contains(out, "the bids of 1 placements: 0 failed") {
		t.Fatalf("verify, the VM's placement's bid among what it checks:\n%s", out)
	}

	// The benchmark, one run of each: it prints its ratio and takes away what it made.
	bench := c.cli("bench", "vm", "--kernel", filepath.Join(img, "vmlinuz"), "--initrd", filepath.Join(img, "initrd.img"), "--runs", "1")
	if !strings.Contains(bench, "ratio enjin/bare:") {
		t.Fatalf("enjin bench vm:\n%s", bench)
	}
	t.Logf("enjin bench vm --runs 1:\n%s", bench)
	if out := c.cli("tenants", "ls") + c.cli("images", "ls"); strings.Contains(out, "bench") {
		t.Fatalf("enjin bench vm left its tenant or image:\n%s", out)
	}

	// Room: ring 0 places a VM only while the node's VMs fit in the memory it offers them.
	c.checkRoom(t, 512) // vm1, a small one, holds 512 MiB
	c.checkNetworks(t)
	c.checkTenantNetwork(t)
	c.checkRouter(t)

	for _, step := range []struct{ verb, want string }{{"stop", "stopped"}, {"start", "running"}, {"reboot", "running"}} {
		if got := c.vmJSON("vms", step.verb, "acme/vm1", "-o", "json"); got.ObservedState != step.want {
			t.Fatalf("vms %s: %+v", step.verb, got)
		}
	}
	c.waitGuestHTTP(vm.Addresses[0], "vm1\n")
	if got := c.vmJSON("vms", "nic", "add", "acme/vm1", "-o", "json"); len(got.Addresses) != 2 || len(got.Spec.NICs) != 2 {
		t.Fatalf("nic add: %+v", got)
	}
	if n := ifaces(t, vm.ID); n != 2 {
		t.Fatalf("the running domain has %d interfaces, want 2", n)
	}
	added := "hot-added: eth1 " + strings.ToLower(c.vmJSON("vms", "show", "acme/vm1", "-o", "json").Spec.NICs[1].MAC)
	var con string
	if !harness.Poll(60*time.Second, func() bool { con = c.cli("vms", "console", "acme/vm1"); return strings.Contains(con, added) }) {
		t.Fatalf("the guest did not see its new NIC (%q):\n%s", added, con)
	}
	if !strings.Contains(con, "enjin-guest: up") {
		t.Fatalf("console:\n%s", con)
	}
	c.cli("vms", "destroy", "acme/vm1")
	c.checkNoVMLeft(t, vm.ID)

	// A volume carries data from one VM to the next.
	c.cli("volumes", "create", "acme/data", "--size", "1")
	marker := fmt.Sprintf("volume-marker-%d", time.Now().UnixNano())
	// The guest has no root disk (it boots a kernel and initramfs): the volume is its first
	// virtio disk, whatever target libvirt names.
	wait := `for i in $(seq 100); do d=$(ls /dev/vd? 2>/dev/null | head -1); [ -b "$d" ] && break; sleep 0.2; done; `
	write := wait + `echo ` + marker + ` | dd of="$d" conv=notrunc,fsync 2>/dev/null && echo wrote-it-to-$d`
	read := wait + `dd if="$d" bs=64 count=1 2>/dev/null | head -1`
	for i, script := range []string{write, read} {
		name := "acme/vol" + strconv.Itoa(i)
		c.createVM(name, "--user-data", script)
		c.cli("vms", "stop", name)
		c.cli("volumes", "attach", "acme/data", name)
		c.cli("vms", "start", name)
		want := []string{"wrote-it-to-/dev/vd", "user-data: " + marker}[i]
		var con string
		if !harness.Poll(120*time.Second, func() bool {
			con = c.cli("vms", "console", name)
			return strings.Contains(con, want)
		}) {
			t.Fatalf("%s's console does not say %q:\n%s", name, want, con)
		}
		c.cli("volumes", "detach", "acme/data")
		c.cli("vms", "destroy", name)
	}
	c.cli("volumes", "rm", "acme/data")

	// Ten create/destroy cycles leak nothing (supervisors/libvirt runs twenty below the CLI).
	before := vmLeftovers(t, c)
	t1 := time.Now()
	for i := range 10 {
		v := c.createVM("acme/cycle")
		c.cli("vms", "destroy", "acme/cycle")
		c.checkNoVMLeft(t, v.ID)
		_ = i
	}
	if after := vmLeftovers(t, c); after != before {
		t.Fatalf("after 10 cycles: %s, before: %s", after, before)
	}
	t.Logf("10 create/destroy cycles in %v: %s before and after", time.Since(t1).Round(time.Second), before)

	// VMs outlive a SIGKILLed ring 1, which adopts them — keep-c on a tenant network with DHCP
	// and a rule set, whose guard, rules and DHCP server the new node takes over.
	c.cli("networks", "create", "acme/keepnet", "--cidr4", "100.79.0.0/24", "--dhcp")
	c.cli("rulesets", "create", "acme/keep", "--rule", "in tcp 80 accept")
	var ids []string
	for _, n := range []string{"a", "b", "c"} {
		var extra []string
		if n == "c" {
			extra = []string{"--network", "keepnet", "--ruleset", "keep"}
		}
		ids = append(ids, c.createVM("acme/keep-"+n, extra...).ID)
	}
	tables := c.networkTables(t)
	old := c.ring1PID()
	pids := qemuPIDs(t, ids)
	syscall.Kill(old, syscall.SIGKILL)
	harness.Eventually(t, 60*time.Second, func() bool { p := c.ring1PID(); return p != 0 && p != old }, "ring 1 started again")
	for i, id := range ids {
		if now := qemuPIDs(t, []string{id}); now[0] != pids[i] || !harness.Alive(pids[i]) {
			t.Fatalf("VM %s's qemu was %d, is %d after ring 1's restart: not adopted", id, pids[i], now[0])
		}
	}
	// Once the new node is up, the adopted VMs take commands.
	var last string
	if !harness.Poll(60*time.Second, func() bool {
		out, err := exec.Command(harness.Binary(t), "vms", "stop", "acme/keep-a", "-o", "json", "--state-dir", c.state).CombinedOutput()
		last = string(out)
		return err == nil && strings.Contains(last, `"observed_state": "stopped"`)
	}) {
		t.Fatalf("the adopted VM does not take commands:\n%s", last)
	}
	if now := c.networkTables(t); now != tables {
		t.Fatalf("tenant network state before ring 1's restart:\n%s\nafter:\n%s", tables, now)
	}

	// libvirtd restarted: ring 1 reconnects by itself.
	hold.Exclusive(t)
	b, _ := os.ReadFile("/run/libvirtd.pid")
	lpid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	syscall.Kill(lpid, syscall.SIGTERM)
	harness.Eventually(t, 30*time.Second, func() bool { return !harness.Alive(lpid) }, "libvirtd gone")
	if out, err := exec.Command(filepath.Join(moduleRoot(t), "deploy", "libvirt.sh")).CombinedOutput(); err != nil {
		t.Fatalf("deploy/libvirt.sh: %v\n%s", err, out)
	}
	harness.Eventually(t, 60*time.Second, func() bool {
		out, err := exec.Command(harness.Binary(t), "vms", "start", "acme/keep-a", "-o", "json", "--state-dir", c.state).CombinedOutput()
		return err == nil && strings.Contains(string(out), `"observed_state": "running"`)
	}, "ring 1 working through libvirtd again")
	hold.Shared(t)
}

// vmRecord is what the CLI shows of a VM with -o json.
type vmRecord struct {
	ID            string   `json:"id"`
	Node          string   `json:"node"`
	ObservedState string   `json:"observed_state"`
	Addresses     []string `json:"addresses"`
	Spec          struct {
		NICs []struct{ MAC string } `json:"nics"`
	} `json:"spec"`
}

func (c *cloud) vmJSON(args ...string) vmRecord {
	c.t.Helper()
	var v vmRecord
	if err := json.Unmarshal([]byte(c.cli(args...)), &v); err != nil {
		c.t.Fatalf("enjin %v: %v", args, err)
	}
	return v
}

func (c *cloud) createVM(ref string, extra ...string) vmRecord {
	c.t.Helper()
	return c.vmJSON(append([]string{"vms", "create", ref, "--image", "guest", "--type", "small", "-o", "json"}, extra...)...)
}

func (c *cloud) destroyAllVMs(tenant string) {
	out, _ := exec.Command(harness.Binary(c.t), "vms", "ls", tenant, "-o", "json", "--state-dir", c.state).Output()
	var l struct {
		VMs []struct{ Name string } `json:"vms"`
	}
	json.Unmarshal(out, &l)
	for _, v := range l.VMs {
		exec.Command(harness.Binary(c.t), "vms", "destroy", tenant+"/"+v.Name, "--state-dir", c.state).Run()
	}
}

func (c *cloud) waitGuestHTTP(addr, want string) {
	c.t.Helper()
	cl := http.Client{Timeout: 2 * time.Second}
	harness.Eventually(c.t, 120*time.Second, func() bool {
		resp, err := cl.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b) == want
	}, "the guest at %s serving %q", addr, want)
}

// waitOwnObservation waits until ring 0 stores an observation the VM signed itself.
func (c *cloud) waitOwnObservation(t *testing.T, id string) {
	t.Helper()
	harness.Eventually(t, 120*time.Second, func() bool {
		var r struct {
			Observations []struct {
				Observer string `json:"observer"`
			} `json:"observations"`
		}
		resp, err := c.apiGet("/v1/nodes/" + id + "/observations?limit=50")
		if err != nil || json.Unmarshal(resp, &r) != nil {
			return false
		}
		for _, o := range r.Observations {
			if o.Observer == "" {
				return true
			}
		}
		return false
	}, "an observation VM %s signed itself, stored", id)
}

func (c *cloud) apiGet(path string) ([]byte, error) {
	tok, err := os.ReadFile(c.ep.AdminTokenFile)
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest("GET", c.ep.API+path, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	cl := c.ep.client(c.t)
	cl.Timeout = 30 * time.Second // a test's wait stays bounded when the API does not answer
	resp, err := cl.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// checkNoVMLeft: no domain, no files, no tap of the VM.
func (c *cloud) checkNoVMLeft(t *testing.T, id string) {
	t.Helper()
	if out, _ := exec.Command("virsh", "-c", "qemu:///system", "list", "--all", "--name").Output(); strings.Contains(string(out), id) {
		t.Fatalf("domain %s left:\n%s", id, out)
	}
	if _, err := os.Stat(filepath.Join("/var/lib/enjin/vms", "ring1-local-"+c.bridge, "vms", id)); !os.IsNotExist(err) {
		t.Fatalf("the files of VM %s are left: %v", id, err)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "master", c.bridge).Output(); strings.Count(string(out), "\n") != 0 {
		t.Fatalf("taps left on the bridge:\n%s", out)
	}
}

// vmLeftovers counts the node's domains (those whose files are the node's: other packages'
// tests run guests on the same libvirtd meanwhile), VM directories and bridge ports.
func vmLeftovers(t *testing.T, c *cloud) string {
	root := filepath.Join("/var/lib/enjin/vms", "ring1-local-"+c.bridge)
	out, _ := exec.Command("virsh", "-c", "qemu:///system", "list", "--all", "--name").Output()
	doms := 0
	for _, name := range strings.Fields(string(out)) {
		if x, _ := exec.Command("virsh", "-c", "qemu:///system", "dumpxml", name).Output(); bytes.Contains(x, []byte(root+"/")) {
			doms++
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(root, "vms", "*"))
	ports, _ := exec.Command("ip", "-o", "link", "show", "master", c.bridge).Output()
	return fmt.Sprintf("%d domains, %d VM directories, %d bridge ports", doms, len(dirs), strings.Count(string(ports), "\n"))
}

// ifaces counts the running domain's interfaces.
func ifaces(t *testing.T, id string) int {
	out, err := exec.Command("virsh", "-c", "qemu:///system", "domiflist", id).Output()
	if err != nil {
		t.Fatalf("virsh domiflist: %v", err)
	}
	return strings.Count(string(out), "bridge")
}

// qemuPIDs are the pids of the qemu processes of the VMs, by their ids.
func qemuPIDs(t *testing.T, ids []string) []int {
	var out []int
	for _, id := range ids {
		b, err := os.ReadFile("/run/libvirt/qemu/" + id + ".pid")
		if err != nil {
			t.Fatalf("qemu pid of %s: %v", id, err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		out = append(out, pid)
	}
	return out
}

// guestImage builds the guest image once per test process.
func guestImage(t *testing.T) string { return builtImage(t, "") }

// builtImage builds the guest image of a kind (deploy/guest-image.sh's option: "" or
// "--ring1") once per test process, one build at a time, every kind with the same static
// enjin, built once.
func builtImage(t *testing.T, kind string) string {
	t.Helper()
	guestImages.mu.Lock()
	defer guestImages.mu.Unlock()
	if guestImages.dirs[kind] == "" && guestImages.errs[kind] == nil {
		dir, err := os.MkdirTemp("/tmp", "enjin-guestimg-")
		if err == nil && guestImages.bin == "" { // one static enjin for every kind
			bin := filepath.Join(dir, "enjin-static")
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/enjin")
			cmd.Dir, cmd.Env = moduleRoot(t), append(os.Environ(), "CGO_ENABLED=0")
			if out, berr := cmd.CombinedOutput(); berr != nil {
				err = fmt.Errorf("go build a static enjin: %v\n%s", berr, out)
			}
			guestImages.bin = bin
		}
		if err == nil {
			args := append(slices.DeleteFunc([]string{kind}, func(s string) bool { return s == "" }), dir)
			cmd := exec.Command(filepath.Join(moduleRoot(t), "deploy", "guest-image.sh"), args...)
			cmd.Env = append(os.Environ(), "ENJIN_BIN="+guestImages.bin)
			if out, berr := cmd.CombinedOutput(); berr != nil {
				err = fmt.Errorf("deploy/guest-image.sh %s: %v\n%s", kind, berr, out)
			}
		}
		guestImages.dirs[kind], guestImages.errs[kind] = dir, err
	}
	if err := guestImages.errs[kind]; err != nil {
		t.Fatal(err)
	}
	return guestImages.dirs[kind]
}

var guestImages = struct {
	mu   sync.Mutex
	bin  string // the static enjin every kind holds
	dirs map[string]string
	errs map[string]error
}{dirs: map[string]string{}, errs: map[string]error{}}

// checkRoom tries two VMs the node has no room for, each refused with a 409 before anything
// is made: one larger than all the node offers VMs, and one that would fit alone but not
// beside the held MiB of the VMs already there.
func (c *cloud) checkRoom(t *testing.T, held int) {
	t.Helper()
	var r struct {
		Observations []struct {
			Observer string `json:"observer"`
			Payload  string `json:"payload"`
		} `json:"observations"`
	}
	b, err := c.apiGet("/v1/nodes/ring1-local/observations?limit=1")
	if err != nil || json.Unmarshal(b, &r) != nil || len(r.Observations) != 1 {
		t.Fatalf("the node's last observation: %v %s", err, b)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(r.Observations[0].Payload)
	var obs enjin.Observation
	if err := json.Unmarshal(payload, &obs); err != nil || obs.VMMemoryMB <= int64(held) {
		t.Fatalf("the node offers VMs %d MiB (%v): %s", obs.VMMemoryMB, err, payload)
	}
	for _, tc := range []struct {
		name string
		mb   int64
	}{{"whole", obs.VMMemoryMB + 1}, {"rest", obs.VMMemoryMB - int64(held) + 1}} {
		c.cli("machine-types", "create", tc.name, "--vcpus", "1", "--memory", strconv.FormatInt(tc.mb, 10), "--disk", "1")
		out, err := exec.Command(harness.Binary(t), "vms", "create", "acme/"+tc.name, "--image", "guest",
			"--type", tc.name, "--state-dir", c.state).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "no room") || !strings.Contains(string(out), "(409)") {
			t.Fatalf("a %s VM of %d MiB: %v\n%s", tc.name, tc.mb, err, out)
		}
		t.Logf("refused: %s", strings.TrimSpace(string(out)))
	}
	if out := c.cli("vms", "ls", "acme"); strings.Contains(out, "whole") || strings.Contains(out, "rest") {
		t.Fatalf("a refused VM was recorded:\n%s", out)
	}
}

// checkNetworks drives a tenant's networks through the CLI: created with the next VNI and the
// first host address as gateway, listed, shown, an overlapping one refused in one line, deleted.
func (c *cloud) checkNetworks(t *testing.T) {
	t.Helper()
	var n struct {
		VNI      int    `json:"vni"`
		Gateway4 string `json:"gateway4"`
		Prefix6  string `json:"prefix6"`
	}
	out := c.cli("networks", "create", "acme/net1", "--cidr4", "100.77.0.0/24", "--prefix6", "fd00:77::/64", "--dhcp", "-o", "json")
	if err := json.Unmarshal([]byte(out), &n); err != nil || n.VNI < 4096 || n.Gateway4 != "100.77.0.1" || n.Prefix6 != "fd00:77::/64" {
		t.Fatalf("networks create: %v\n%s", err, out)
	}
	if out := c.cli("networks", "ls", "acme"); !strings.Contains(out, "acme/net1") || !strings.Contains(out, "100.77.0.0/24") {
		t.Fatalf("networks ls:\n%s", out)
	}
	bad, err := exec.Command(harness.Binary(t), "networks", "create", "acme/net2", "--cidr4", "100.77.0.128/25", "--state-dir", c.state).CombinedOutput()
	if err == nil || !strings.Contains(string(bad), "overlaps") || strings.Count(strings.TrimSpace(string(bad)), "\n") != 0 {
		t.Fatalf("an overlapping network: %v\n%s", err, bad)
	}
	if out := c.cli("networks", "delete", "acme/net1"); !strings.Contains(out, "deleted acme/net1") {
		t.Fatalf("networks delete:\n%s", out)
	}
}
