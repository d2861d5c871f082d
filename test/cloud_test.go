package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/rings/ring1"
	"enjin/test/harness"
)

// ring0Proc is `enjin ring0` as a child process on a throwaway PostgreSQL, with fixed ports
// so it can be killed and restarted in place.
type ring0Proc struct {
	t         *testing.T
	state     string
	dbURL     string
	natsPort  int
	apiPort   int
	heartbeat time.Duration
	extra     []string
	proc      *harness.Proc
	token     string
}

func newRing0(t *testing.T, heartbeat time.Duration, extra ...string) *ring0Proc {
	dir, err := os.MkdirTemp("/tmp", "enjin-r0-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg := harness.StartPostgres(t)
	r := &ring0Proc{t: t, state: filepath.Join(dir, "state"), dbURL: pg.CreateDatabase(t, ""),
		natsPort: harness.FreePort(t), apiPort: harness.FreePort(t), heartbeat: heartbeat, extra: extra}
	r.start()
	return r
}

func (r *ring0Proc) api() string  { return "http://127.0.0.1:" + strconv.Itoa(r.apiPort) }
func (r *ring0Proc) nats() string { return "nats://127.0.0.1:" + strconv.Itoa(r.natsPort) }

func (r *ring0Proc) start() {
	r.t.Helper()
	args := append([]string{"ring0", "--state-dir", r.state, "--database-url", r.dbURL,
		"--nats-port", strconv.Itoa(r.natsPort), "--api-addr", "127.0.0.1:" + strconv.Itoa(r.apiPort),
		"--heartbeat", r.heartbeat.String(), "--log-level", "warn"}, r.extra...)
	r.proc = harness.Start(r.t, args...)
	harness.Eventually(r.t, 30*time.Second, func() bool {
		resp, err := http.Get(r.api() + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "ring 0 healthy")
	b, err := os.ReadFile(filepath.Join(r.state, "admin.token"))
	if err != nil {
		r.t.Fatal(err)
	}
	r.token = strings.TrimSpace(string(b))
}

// restart kills ring 0 with SIGKILL and starts it again on the same state and ports.
func (r *ring0Proc) restart() {
	r.proc.Kill()
	r.start()
}

func (r *ring0Proc) call(method, path string, in, out any) int {
	r.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, r.api()+path, body)
	req.Header.Set("Authorization", "Bearer "+r.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			r.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		r.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// external registers an external ring 1 node and returns a one-time join token for it.
func (r *ring0Proc) external(id enjin.NodeID) string {
	r.t.Helper()
	if code := r.call("POST", "/v1/nodes", map[string]any{"id": id, "ring": 1, "label": "test",
		"supervision_strategy": "external", "observation_strategy": "self"}, nil); code != 201 {
		r.t.Fatalf("register %s: %d", id, code)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if code := r.call("POST", "/v1/nodes/"+string(id)+"/join-token", map[string]any{"ttl_seconds": 600}, &tok); code != 201 {
		r.t.Fatalf("join token for %s: %d", id, code)
	}
	return tok.Token
}

// joinFile registers an external node and writes a one-time join token for it to a file, for
// `enjin ring1 --join-file`: a token is never an argument.
func (r *ring0Proc) joinFile(id enjin.NodeID) string {
	r.t.Helper()
	p := filepath.Join(r.t.TempDir(), "join.token")
	if err := os.WriteFile(p, []byte(r.external(id)+"\n"), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// join registers an external node and joins it in process, returning its configuration.
func (r *ring0Proc) join(id enjin.NodeID) ring1.Config {
	r.t.Helper()
	cfg, err := ring1.Join(r.t.Context(), r.api(), r.external(id), r.t.TempDir(), nil)
	if err != nil {
		r.t.Fatalf("join %s: %v", id, err)
	}
	return cfg
}

// joinOnBus joins an external node and connects it to the bus: its configuration, its
// connection (closed when the test ends) and its observation signer.
func (r *ring0Proc) joinOnBus(id enjin.NodeID, opts ...nats.Option) (ring1.Config, *nats.Conn, *bus.Signer) {
	r.t.Helper()
	cfg := r.join(id)
	nc, err := bus.Connect(r.nats(), cfg.Creds, opts...)
	if err != nil {
		r.t.Fatalf("connect %s: %v", id, err)
	}
	r.t.Cleanup(nc.Close)
	return cfg, nc, bus.NewSigner(id, cfg.Attestation)
}

// nodeState reads a node's judged state through the API.
func (r *ring0Proc) nodeState(id enjin.NodeID) string {
	s, _ := r.node(id)
	return s
}

// node reads a node's judged state and last stored sequence through the API.
func (r *ring0Proc) node(id enjin.NodeID) (string, uint64) {
	var n struct {
		State   string `json:"state"`
		LastSeq uint64 `json:"last_seq"`
	}
	if code := r.call("GET", "/v1/nodes/"+string(id), nil, &n); code != 200 {
		return fmt.Sprintf("http %d", code), 0
	}
	return n.State, n.LastSeq
}
