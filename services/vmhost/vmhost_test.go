package vmhost_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"enjin/keys"
	"enjin/services/vmhost"
	"enjin/supervisors/libvirt"
	"enjin/supervisors/sandbox"
	"enjin/test/harness"
)

// image is the guest image deploy/guest-image.sh builds, with the digests ring 0 would give
// it; built once per test run.
var image struct {
	dir, kernel, initrd string
	ref                 enjin.VMImage
}

func TestMain(m *testing.M) {
	if out, err := exec.Command("../../deploy/libvirt.sh").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "deploy/libvirt.sh: %v\n%s", err, out)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("/tmp", "enjin-vmhost-img-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755)
	if out, err := exec.Command("../../deploy/guest-image.sh", dir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "deploy/guest-image.sh: %v\n%s", err, out)
		os.Exit(1)
	}
	image.dir, image.kernel, image.initrd = dir, filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	k, i := digestOf(image.kernel), digestOf(image.initrd)
	pair := sha256.Sum256([]byte(k + "\n" + i + "\n"))
	image.ref = enjin.VMImage{ID: "img", Kind: "kernel", Digest: "sha256-" + hex.EncodeToString(pair[:]), Kernel: k, Initrd: i}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func digestOf(path string) string {
	f, err := os.Open(path)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return "sha256-" + hex.EncodeToString(h.Sum(nil))
}

// world is a vmhost on real libvirtd, a real bridge with its firewall, and a real broker the
// guests reach through the relay on the gateway.
type world struct {
	host    *vmhost.Host
	cfg     vmhost.Config
	net     *sandbox.Network
	lv      *libvirt.Conn
	obs     chan *nats.Msg
	fetched int
	revoked []string
	hold    *harness.Libvirtd
}

func newWorld(t *testing.T) *world {
	t.Helper()
	hold := harness.LibvirtdShared(t)
	n := time.Now().UnixNano()%200 + 20
	nw := &sandbox.Network{Bridge: fmt.Sprintf("enjvm%d", n), Prefix: netip.MustParsePrefix(fmt.Sprintf("100.97.%d.0/24", n))}
	if err := nw.Ensure(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", nw.Bridge).Run() })
	if err := nw.Firewall(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.RemoveFirewall() })
	c := harness.StartBroker(t)
	iss, _ := c.Tenant(t, "acme")
	perms := bus.Ring1NodePerms("host-a")
	perms.SubAllow = append(perms.SubAllow, bus.R1FromTenantObs("acme"))
	nc := c.Connect(t, c.Mint(t, keys.RING1, keys.UserRequest{Name: "host-a", Perms: perms}))
	w := &world{net: nw, obs: make(chan *nats.Msg, 1024), hold: hold}
	if _, err := nc.ChanSubscribe(bus.R1FromTenantObs("acme"), w.obs); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	ln, err := net.Listen("tcp", net.JoinHostPort(nw.Gateway().String(), strconv.Itoa(sandbox.GuestPort)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- vmhost.ServeRelay(ctx, ln, strings.TrimPrefix(c.URL, "nats://")) }() // ends at cleanup
	t.Cleanup(func() { cancel(); <-done })
	w.lv, err = libvirt.Dial(t.Context(), libvirt.System, harness.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.lv.Close() })
	dir, _ := os.MkdirTemp("/tmp", "enjin-vmhost-")
	t.Cleanup(func() { os.RemoveAll(dir) })
	w.cfg = vmhost.Config{Dir: dir, Node: "host-a", Libvirt: w.lv, Bridge: nw.Bridge, Network: nw, Prefix: nw.Prefix,
		NATS: []string{"nats://" + net.JoinHostPort(nw.Gateway().String(), strconv.Itoa(sandbox.GuestPort))},
		Fetch: func(ctx context.Context, digest, part string, f *os.File) error {
			if digest != image.ref.Digest {
				return fmt.Errorf("no image %s", digest)
			}
			src := map[string]string{"kernel": image.kernel, "initrd": image.initrd}[part]
			b, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			w.fetched++
			_, err = f.Write(b)
			return err
		},
		Mint: func(ctx context.Context, tn enjin.TenantID, id enjin.NodeID) (vmhost.Identity, error) {
			cr, err := iss.Mint(keys.UserRequest{Name: string(id)}, time.Now())
			if err != nil {
				return vmhost.Identity{}, err
			}
			att, err := keys.NewAttestation()
			if err != nil {
				return vmhost.Identity{}, err
			}
			file, _ := cr.File()
			return vmhost.Identity{Creds: string(file), UserPub: cr.PublicKey, AttestSeed: att.SeedText(), AttestPub: att.Public()}, nil
		},
		Revoke: func(_ enjin.TenantID, user string) { w.revoked = append(w.revoked, user) },
		Logger: harness.Logger(t)}
	if w.host, err = vmhost.New(w.cfg); err != nil {
		t.Fatal(err)
	}
	return w
}

func request(id string) enjin.VMRequest {
	return enjin.VMRequest{ID: enjin.NodeID(id), Tenant: "acme", Name: "web", VCPUs: 1, MemoryMB: 256, DiskGB: 1,
		Image: image.ref, NICs: []enjin.VMNIC{{MAC: "52:54:00:aa:00:01", Network: "default"}}, State: enjin.VMRunning}
}

// A VM is made from the image, boots, serves its name to its host, sends heartbeats over the
// relay that its attestation key signs; it stops and starts, takes a NIC and a volume while
// running, is adopted by a restarted host, and leaves nothing behind when destroyed.
func TestVMLifecycle(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	req := request("3f1d2b8e-0000-4000-8000-0000000000c1")
	t.Cleanup(func() { w.host.Destroy(context.Background(), "acme", req.ID) }) // if the test stops early
	t0 := time.Now()
	st, err := w.host.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != enjin.VMRunning || len(st.Addresses) != 1 {
		t.Fatalf("status %+v", st)
	}
	addr := st.Addresses[0]
	w.waitConsole(t, req.ID, "enjin-guest: up")
	w.waitHTTP(t, addr, "web\n")
	heartbeat := w.waitHeartbeat(t, req.ID)
	t.Logf("apply → first signed heartbeat over the relay: %v (%+v)", time.Since(t0).Round(time.Millisecond), heartbeat)
	if w.fetched != 2 {
		t.Fatalf("image parts fetched %d times, want 2", w.fetched)
	}
	if _, err := w.host.Apply(ctx, req); err != nil || w.fetched != 2 {
		t.Fatalf("applying the same request again: %v, %d fetches", err, w.fetched)
	}

	// Stop (ACPI power button) and start again.
	req.State = enjin.VMStopped
	if st, err = w.host.Apply(ctx, req); err != nil || st.State != enjin.VMStopped {
		t.Fatalf("stop: %+v %v", st, err)
	}
	req.State = enjin.VMRunning
	if st, err = w.host.Apply(ctx, req); err != nil || st.State != enjin.VMRunning {
		t.Fatalf("start: %+v %v", st, err)
	}
	w.waitHTTP(t, addr, "web\n")

	// A second NIC and a volume, hot-plugged.
	volume := "3f1d2b8e-0000-4000-8000-0000000000d1"
	if err := w.host.ApplyVolume(ctx, volume, 1); err != nil {
		t.Fatal(err)
	}
	req.NICs = append(req.NICs, enjin.VMNIC{MAC: "52:54:00:aa:00:02", Network: "default"})
	req.Volumes = []enjin.VMVolume{{ID: volume, Name: "data", SizeGB: 1}}
	if st, err = w.host.Apply(ctx, req); err != nil || len(st.Addresses) != 2 {
		t.Fatalf("hot-plug: %+v %v", st, err)
	}
	live, _ := w.lv.XML(string(req.ID), true)
	if !strings.Contains(live, "52:54:00:aa:00:02") || !strings.Contains(live, volume) {
		t.Fatalf("the running domain lacks the new NIC or volume:\n%s", live)
	}

	// A restarted node adopts the running VM: same domain, not restarted.
	nw2 := &sandbox.Network{Bridge: w.net.Bridge, Prefix: w.net.Prefix}
	cfg := w.cfg
	cfg.Network = nw2
	h2, err := vmhost.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h2.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := nw2.ReserveAddr(netip.MustParseAddr(addr)); err == nil {
		t.Fatalf("the adopted VM's address %s was free again", addr)
	}
	if kids := h2.Children(); len(kids) != 1 || kids[0].State != enjin.VMRunning {
		t.Fatalf("children after restore: %+v", kids)
	}
	w.childrenWhileLibvirtdHangs(t, h2)

	// Destroy: nothing left.
	if _, err := h2.Destroy(ctx, "acme", req.ID); err != nil {
		t.Fatal(err)
	}
	if infos, _ := w.lv.List(); len(infos) != 0 && infos[0].Name == string(req.ID) {
		t.Fatalf("domain left: %+v", infos)
	}
	if _, err := os.Stat(filepath.Join(w.cfg.Dir, "vms", string(req.ID))); !os.IsNotExist(err) {
		t.Fatalf("the VM's directory is left: %v", err)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "master", w.net.Bridge).Output(); len(out) != 0 {
		t.Fatalf("taps left on the bridge:\n%s", out)
	}
	if len(w.revoked) != 1 {
		t.Fatalf("revoked %v, want the VM's user", w.revoked)
	}
	if err := nw2.ReserveAddr(netip.MustParseAddr(addr)); err != nil {
		t.Fatalf("the destroyed VM's address is not free: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.cfg.Dir, "volumes", volume+".qcow2")); err != nil {
		t.Fatalf("the volume went with the VM: %v", err)
	}
}

func (w *world) waitConsole(t *testing.T, id enjin.NodeID, want string) {
	t.Helper()
	var text string
	ok := harness.Poll(90*time.Second, func() bool {
		text, _ = w.host.Console("acme", id)
		return strings.Contains(text, want)
	})
	if !ok {
		t.Fatalf("%q not on the console within 90s:\n%s", want, text)
	}
}

func (w *world) waitHTTP(t *testing.T, addr, want string) {
	t.Helper()
	cl := http.Client{Timeout: 2 * time.Second}
	harness.Eventually(t, 60*time.Second, func() bool {
		resp, err := cl.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b) == want
	}, "the guest serving %q on %s", want, addr)
}

// waitHeartbeat waits for a heartbeat from the VM, checks the node it names, and returns it.
func (w *world) waitHeartbeat(t *testing.T, id enjin.NodeID) enjin.Observation {
	t.Helper()
	select {
	case m := <-w.obs:
		var obs enjin.Observation
		if err := json.Unmarshal(m.Data, &obs); err != nil || obs.Node != id || obs.Ring != enjin.Ring2 {
			t.Fatalf("heartbeat %s: %+v %v", m.Data, obs, err)
		}
		if m.Header.Get("Obs-Sig") == "" {
			t.Fatal("an unsigned heartbeat")
		}
		return obs
	case <-time.After(90 * time.Second):
		text, _ := w.host.Console("acme", id)
		t.Fatalf("no heartbeat within 90s:\n%s", text)
		return enjin.Observation{}
	}
}

// childrenWhileLibvirtdHangs pauses libvirtd (SIGSTOP: it takes connections and answers
// nothing, as when it is busy starting) and asks h for its children, as every heartbeat
// does: the answer is the last listing, at once, not a heartbeat stuck until libvirtd wakes.
func (w *world) childrenWhileLibvirtdHangs(t *testing.T, h *vmhost.Host) {
	t.Helper()
	w.hold.Exclusive(t)
	defer w.hold.Shared(t)
	b, err := os.ReadFile("/run/libvirtd.pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	wake := func() { once.Do(func() { syscall.Kill(pid, syscall.SIGCONT) }) }
	timer := time.AfterFunc(10*time.Second, wake) // a stuck call fails the test, not the run
	defer timer.Stop()
	defer wake()
	t0 := time.Now()
	kids := h.Children()
	took := time.Since(t0)
	wake()
	if len(kids) != 1 || kids[0].State != enjin.VMRunning {
		t.Errorf("children while libvirtd hangs: %+v, want the last listing", kids)
	}
	if took > 2*time.Second {
		t.Errorf("children took %v while libvirtd hung: a heartbeat waits on libvirtd", took)
	}
	t.Logf("children while libvirtd hung: %v", took.Round(time.Millisecond))
}
