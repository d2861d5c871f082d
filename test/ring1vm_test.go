package test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"enjin/test/harness"
)

// TestRing1VM grows the cloud by itself: ring 0 starts a ring 1 host as a VM on ring1-local
// (the libvirt strategy) from an image built by deploy/guest-image.sh --ring1. The VM joins
// with the one-time token ring 0 put in its metadata, through ring1-local's relay; it comes
// up with heartbeats signed by a key it made itself (they verify), takes an app placed on it
// and serves it through the router of ring1-local; the token cannot be used again;
// decommissioned, its VM is gone.
func TestRing1VM(t *testing.T) {
	harness.LibvirtdShared(t)
	c := newCloud(t)
	c.start()
	img := ring1Image(t)
	// The sample app, static: the VM's root holds no C library of the machine's.
	if out, err := exec.Command("env", "CGO_ENABLED=0", "go", "build", "-o", filepath.Join(c.sample, "sampleapp"), "./sampleapp").CombinedOutput(); err != nil {
		t.Fatalf("build sampleapp: %v\n%s", err, out)
	}
	c.cli("images", "upload", "--kernel", filepath.Join(img, "vmlinuz"), "--initrd", filepath.Join(img, "initrd.img"), "--name", "ring1", "-q")
	c.cli("machine-types", "create", "host", "--vcpus", "1", "--memory", "1536", "--disk", "2")

	// What cannot be grown is refused in one line, before anything is made.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--on", "nosuch", "--image", "ring1"}, "(404)"},
		{[]string{"--on", "ring1-local", "--image", "nosuch"}, "(404)"},
		{[]string{"--on", "ring1-local", "--image", "ring1", "--type", "nosuch"}, "(422)"},
		{[]string{"--on", "ring1-local", "--image", "ring1", "--label", "bad\x1b[2J"}, "(422)"},
		{[]string{"--image", "ring1"}, "--on and --image are required"},
	} {
		out, err := exec.Command(harness.Binary(t), append(append([]string{"nodes", "grow"}, tc.args...), "--state-dir", c.state)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Fatalf("nodes grow %v: %v, want one line saying %q:\n%s", tc.args, err, tc.want, out)
		}
	}
	if out := c.cli("nodes", "--ring", "1"); strings.Count(out, "\n") != 2 {
		t.Fatalf("a refused grow left a node:\n%s", out)
	}

	t0 := time.Now()
	var n struct {
		ID          string `json:"id"`
		Supervision string `json:"supervision_strategy"`
		Parent      string `json:"parent_node"`
	}
	out := c.cli("nodes", "grow", "--on", "ring1-local", "--image", "ring1", "--type", "host", "-o", "json")
	if err := json.Unmarshal([]byte(out), &n); err != nil || n.Supervision != "libvirt" || n.Parent != "ring1-local" {
		t.Fatalf("nodes grow: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(harness.Binary(t), "nodes", "decommission", n.ID, "--state-dir", c.state).Run() })
	started := time.Since(t0)
	if !harness.Poll(6*time.Minute, func() bool {
		b, err := c.apiGet("/v1/nodes/" + n.ID)
		return err == nil && strings.Contains(string(b), `"state":"up"`)
	}) {
		con, _ := exec.Command(harness.Binary(t), "nodes", "console", n.ID, "--state-dir", c.state).CombinedOutput()
		t.Fatalf("ring 1 host %s not up; its console:\n%s", n.ID, con)
	}
	t.Logf("nodes grow → VM running: %v; → the new ring 1 host up: %v", started.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	c.waitOwnObservation(t, n.ID)
	// The token in its metadata was used once, by the VM: it joins nothing again.
	meta, err := os.ReadFile(filepath.Join("/var/lib/enjin/vms", "ring1-local-"+c.bridge, "vms", n.ID, "meta.json"))
	var m struct {
		Host struct {
			Token string `json:"token"`
		} `json:"host"`
	}
	if err != nil || json.Unmarshal(meta, &m) != nil || m.Host.Token == "" {
		t.Fatalf("the VM's metadata: %v %s", err, meta)
	}
	body, _ := json.Marshal(map[string]string{"token": m.Host.Token, "user_key": "UAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "attest_key": "x"})
	if resp, err := http.Post(c.ep.API+"/v1/join", "application/json", bytes.NewReader(body)); err != nil || resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Fatalf("the used token joined again: %v %v", err, resp)
	}
	// Only the VM's address may reach ring 0's API through the relay: it is in the host set.
	if out, _ := exec.Command("nft", "list", "set", "inet", "enjin-"+c.bridge, "hosts").CombinedOutput(); !strings.Contains(string(out), "elements") {
		t.Fatalf("the VM is not let in to the API relay:\n%s", out)
	}
	if out := c.cli("verify"); !strings.Contains(out, "0 failed") || strings.Contains(out, n.ID) {
		t.Fatalf("verify, the new host's signed heartbeats among what it checks:\n%s", out)
	}

	// An app placed on it is served, through the router of ring1-local.
	c.cli("tenants", "create", "acme")
	c.cli("apps", "deploy", "acme/web", c.sample, "--node", n.ID, "-q")
	if out := c.cli("placements"); !strings.Contains(out, n.ID) {
		t.Fatalf("placements: acme/web not on %s:\n%s", n.ID, out)
	}
	if out := c.cli("apps", "ps", "acme/web"); !strings.Contains(out, "healthy") || !strings.Contains(out, "100.127.") {
		t.Fatalf("apps ps: want web.0 healthy in the VM host's own block (100.127.0.0/16):\n%s", out)
	}
	if !harness.Poll(2*time.Minute, func() bool { code, _ := c.get("acme/web"); return code == 200 }) {
		code, body := c.get("acme/web")
		t.Fatalf("acme/web through the router: %d %s", code, body)
	}
	t.Logf("acme/web, on the VM host, served through ring1-local's router")

	// Decommissioned (once it hosts no tenant), the host's VM goes, and with it its files and
	// its way to the relays.
	c.cli("tenants", "delete", "acme")
	c.cli("nodes", "decommission", n.ID)
	if out, _ := exec.Command("virsh", "-c", "qemu:///system", "list", "--all", "--name").Output(); strings.Contains(string(out), n.ID) {
		t.Fatalf("domain %s left after decommission:\n%s", n.ID, out)
	}
	if _, err := os.Stat(filepath.Join("/var/lib/enjin/vms", "ring1-local-"+c.bridge, "vms", n.ID)); !os.IsNotExist(err) {
		t.Fatalf("the files of VM %s are left: %v", n.ID, err)
	}
	if out, _ := exec.Command("nft", "list", "set", "inet", "enjin-"+c.bridge, "hosts").CombinedOutput(); strings.Contains(string(out), "elements") {
		t.Fatalf("the decommissioned VM's address is still let in to the API relay:\n%s", out)
	}
}

// ring1Image builds the ring 1 guest image once per test process.
func ring1Image(t *testing.T) string { return builtImage(t, "--ring1") }
