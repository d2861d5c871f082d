package test

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"enjin/test/harness"
)

// TestUpWithARelativeStateDir runs `enjin up --state-dir var/enjin` from a working directory of
// its own, as a newcomer does: the relative path must name the same place for ring 0 and for
// the ring 1 node it starts (which runs in another directory), and a client command run from
// the same directory finds the cloud.
func TestUpWithARelativeStateDir(t *testing.T) {
	cwd := tempDir(t, "enjin-rel-")
	n := harness.Unique(200)
	up := exec.Command(harness.Binary(t), "up", "--state-dir", "var/enjin", "--nats-port", strconv.Itoa(harness.FreePort(t)),
		"--api-addr", "127.0.0.1:0", "--router", "127.0.0.1:"+strconv.Itoa(harness.FreePort(t)),
		"--router-tls", "127.0.0.1:"+strconv.Itoa(harness.FreePort(t)),
		"--dns", "127.0.0.1:"+strconv.Itoa(harness.FreePort(t)), "--bridge", "enjrl"+strconv.Itoa(n),
		"--prefix", "100.92."+strconv.Itoa(n)+".0/24", "--heartbeat", "300ms")
	up.Dir = cwd
	p := harness.Adopt(t, up)
	t.Cleanup(func() { harness.RemoveNode(t, "enjrl"+strconv.Itoa(n)) })
	epPath := filepath.Join(cwd, "var", "enjin", "endpoints.json")
	harness.Eventually(t, 60*time.Second, func() bool { _, err := os.Stat(epPath); return err == nil },
		"endpoints.json in the relative state dir (output: %s)", p.Out)
	var ep map[string]any
	b, _ := os.ReadFile(epPath)
	if err := json.Unmarshal(b, &ep); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"admin_token_file", "ops_creds", "admin_header_file"} {
		if p, _ := ep[k].(string); !filepath.IsAbs(p) {
			t.Errorf("endpoints.json %s = %q, want an absolute path", k, ep[k])
		}
	}
	nodes := exec.Command(harness.Binary(t), "nodes", "--state-dir", "var/enjin")
	nodes.Dir = cwd
	out, err := nodes.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ring1-local") || !strings.Contains(string(out), "up") {
		t.Fatalf("enjin nodes from the same directory: %v\n%s", err, out)
	}
	t.Logf("enjin up --state-dir var/enjin from %s: ready, and `enjin nodes` finds it", cwd)
}

// TestUpReportsAChildThatCannotStart: when the ring 1 node cannot start (its router's port is
// taken), `enjin up` says why — the node's own last words — and exits non-zero, within 30 s.
func TestUpReportsAChildThatCannotStart(t *testing.T) {
	state := filepath.Join(tempDir(t, "enjin-fail-"), "state")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	n := harness.Unique(200)
	t0 := time.Now()
	up := exec.Command(harness.Binary(t), "up", "--state-dir", state, "--nats-port", strconv.Itoa(harness.FreePort(t)),
		"--api-addr", "127.0.0.1:0", "--router", taken.Addr().String(), "--router-tls", "127.0.0.1:"+strconv.Itoa(harness.FreePort(t)), "--dns", "127.0.0.1:"+strconv.Itoa(harness.FreePort(t)),
		"--bridge", "enjrf"+strconv.Itoa(n), "--prefix", "100.93."+strconv.Itoa(n)+".0/24")
	t.Cleanup(func() { harness.RemoveNode(t, "enjrf"+strconv.Itoa(n)) })
	p := harness.Adopt(t, up)
	code := p.Wait(t, 30*time.Second)
	took := time.Since(t0)
	out := p.Out.String()
	if code == 0 {
		t.Fatalf("enjin up exited 0 with a ring 1 node that cannot start:\n%s", out)
	}
	if !strings.Contains(out, "address already in use") || !strings.Contains(out, "failed to start") {
		t.Fatalf("enjin up did not say why the node failed:\n%s", out)
	}
	last := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	if !strings.HasPrefix(last, "enjin: ") {
		t.Fatalf("last line %q: want the one-line error", last)
	}
	for _, f := range []string{"ring1.pid"} {
		if _, err := os.Stat(filepath.Join(state, "nodes", "ring1-local", f)); err == nil {
			t.Errorf("%s left behind", f)
		}
	}
	t.Logf("exit %d after %v; it said: %s", code, took.Round(time.Millisecond), last)
}

func tempDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
