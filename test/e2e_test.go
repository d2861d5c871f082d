package test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/test/harness"
)

type endpoints struct {
	API            string   `json:"api"`
	NATS           string   `json:"nats"`
	APIs           []string `json:"apis"`
	NATSURLs       []string `json:"nats_urls"`
	AdminTokenFile string   `json:"admin_token_file"`
	OpsCreds       string   `json:"ops_creds"`
	Router         string   `json:"router"`
	AppsDomain     string   `json:"apps_domain"`
	RouterTLS      string   `json:"router_tls"`
	DNS            string   `json:"dns"`
	CA             string   `json:"ca"`
}

// client is an HTTP client for the API: trusting the cloud's CA, which it serves TLS from
// when it listens beyond loopback.
func (ep endpoints) client(t testing.TB) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(ep.CA)
	if err != nil {
		t.Fatalf("the cloud's CA: %v", err)
	}
	cfg, err := keys.ClientTLS(pem, keys.Ring0Name)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// up runs `enjin up` on state and waits for its endpoints.json. Its router, DNS and bridge
// are the test's own, so tests (and a cloud a developer runs) do not collide.
func up(t *testing.T, state string, natsPort int) (*harness.Proc, endpoints) {
	t.Helper()
	os.Remove(filepath.Join(state, "endpoints.json"))
	n := natsPort % 200
	p := harness.Start(t, "up", "--state-dir", state, "--nats-port", strconv.Itoa(natsPort),
		"--api-addr", "127.0.0.1:0", "--heartbeat", "300ms", "--log-level", "warn",
		"--router", "127.0.0.1:"+strconv.Itoa(harness.FreePort(t)), "--router-tls", "127.0.0.1:"+strconv.Itoa(harness.FreePort(t)), "--dns", "127.0.0.1:"+strconv.Itoa(harness.FreePort(t)),
		"--bridge", fmt.Sprintf("enjte%d", n), "--prefix", fmt.Sprintf("100.91.%d.0/24", n))
	t.Cleanup(func() { harness.RemoveNode(t, fmt.Sprintf("enjte%d", n)) })
	var ep endpoints
	harness.Eventually(t, 60*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(state, "endpoints.json"))
		return err == nil && json.Unmarshal(b, &ep) == nil
	}, "enjin up ready (output so far: %s)", p.Out)
	return p, ep
}

func apiGet(t *testing.T, ep endpoints, path string, out any) {
	t.Helper()
	tok, err := os.ReadFile(ep.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", ep.API+path, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", path, resp.Status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// TestEnjinUp runs the main job end to end: the ring 1 node is up with stored, verifiable
// observations; the nats CLI with the OPS creds sees a signed observation and cannot publish;
// SIGTERM stops every process; a second run keeps keys, nodes and observations.
func TestEnjinUp(t *testing.T) {
	dir, err := os.MkdirTemp("/tmp", "enjin-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	state := filepath.Join(dir, "state")
	natsPort := harness.FreePort(t)
	p, ep := up(t, state, natsPort)

	var nodes struct {
		Nodes []struct {
			ID        string `json:"id"`
			State     string `json:"state"`
			AttestPub string `json:"attest_pub"`
			LastSeq   uint64 `json:"last_seq"`
		} `json:"nodes"`
	}
	apiGet(t, ep, "/v1/nodes?ring=1", &nodes)
	if len(nodes.Nodes) != 1 || nodes.Nodes[0].ID != "ring1-local" || nodes.Nodes[0].State != "up" {
		t.Fatalf("nodes: %+v", nodes.Nodes)
	}
	attest := nodes.Nodes[0].AttestPub
	var obs struct {
		Observations []struct {
			Seq     uint64 `json:"seq"`
			TsNs    int64  `json:"ts_ns"`
			Signer  string `json:"signer"`
			Sig     string `json:"sig"`
			Payload string `json:"payload"`
		} `json:"observations"`
	}
	harness.Eventually(t, 10*time.Second, func() bool {
		apiGet(t, ep, "/v1/nodes/ring1-local/observations?limit=10", &obs)
		return len(obs.Observations) >= 3
	}, "three stored observations")
	pub, _ := keys.ParseAttestationPublic(attest)
	for _, o := range obs.Observations {
		sig, _ := base64.RawURLEncoding.DecodeString(o.Sig)
		payload, _ := base64.RawURLEncoding.DecodeString(o.Payload)
		if o.Signer != attest || !ed25519.Verify(pub, bus.Canonical(nil, "ring1-local", o.TsNs, o.Seq, payload), sig) {
			t.Fatalf("stored observation %d does not verify against the registered key", o.Seq)
		}
		var claim enjin.Observation
		if err := json.Unmarshal(payload, &claim); err != nil || claim.Node != "ring1-local" || claim.State != enjin.StateUp {
			t.Fatalf("payload %s: %v", payload, err)
		}
	}
	out, err := exec.Command(harness.Binary(t), "verify", "--state-dir", state).CombinedOutput()
	if err != nil || !strings.Contains(string(out), " 0 failed") {
		t.Fatalf("enjin verify: %v\n%s", err, out)
	}
	t.Logf("enjin verify: %s", strings.TrimSpace(string(out)))

	natsCLI(t, ep)

	// SIGTERM stops everything enjin up started.
	children := descendants(p.Cmd.Process.Pid)
	if len(children) < 2 {
		t.Fatalf("enjin up runs %d child processes, want at least postgres and ring 1", len(children))
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p, 30*time.Second)
	for _, pid := range children {
		if harness.Alive(pid) {
			t.Errorf("process %d (%s) still running after enjin up stopped", pid, cmdline(pid))
		}
	}
	t.Logf("SIGTERM stopped enjin up and its %d descendants", len(children))

	// A second run keeps keys, nodes and observations.
	p2, ep2 := up(t, state, natsPort)
	defer waitStop(t, p2)
	var again struct {
		Nodes []struct {
			ID        string `json:"id"`
			AttestPub string `json:"attest_pub"`
		} `json:"nodes"`
	}
	apiGet(t, ep2, "/v1/nodes", &again)
	if len(again.Nodes) != 1 || again.Nodes[0].AttestPub != attest {
		t.Fatalf("after restart: %+v, want ring1-local with key %s", again.Nodes, attest)
	}
	var older struct {
		Observations []struct{ Seq uint64 } `json:"observations"`
	}
	apiGet(t, ep2, fmt.Sprintf("/v1/nodes/ring1-local/observations?limit=1000&before=%d", obs.Observations[0].Seq+1), &older)
	if len(older.Observations) < len(obs.Observations) {
		t.Fatalf("after restart %d old observations, want ≥ %d", len(older.Observations), len(obs.Observations))
	}
}

// natsCLI checks the operator's view with the real nats CLI.
func natsCLI(t *testing.T, ep endpoints) {
	t.Helper()
	nats, err := exec.LookPath("nats")
	if err != nil {
		gobin := filepath.Join(os.Getenv("HOME"), "go", "bin", "nats")
		if _, err := os.Stat(gobin); err != nil {
			t.Fatal("the nats CLI is not installed (./test/run installs natscli v0.3.0)")
		}
		nats = gobin
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, nats, "--creds", ep.OpsCreds, "-s", ep.NATS, "sub", "ops.>", "--count", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("nats sub: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ops.ring1.ring1-local.obs") || !strings.Contains(string(out), bus.HdrSig) {
		t.Fatalf("nats sub did not show a signed observation:\n%s", out)
	}
	for _, subj := range []string{"ops.x", "ring1.ring1-local.obs", "ring1.ring1-local.cmd.drain"} {
		out, _ := exec.CommandContext(ctx, nats, "--creds", ep.OpsCreds, "-s", ep.NATS, "pub", subj, "hello").CombinedOutput()
		if !strings.Contains(string(out), "Permissions Violation") {
			t.Fatalf("nats pub %s with OPS creds was not refused:\n%s", subj, out)
		}
	}
}

func waitExit(t *testing.T, p *harness.Proc, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("enjin did not exit within %v", d)
	}
}

func waitStop(t *testing.T, p *harness.Proc) {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, p, 30*time.Second)
}

// descendants lists every process below pid.
func descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(string(b), "\x00", " ")
}
