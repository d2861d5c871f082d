package test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"enjin"
	"enjin/bus"
	"enjin/bus/broker"
	"enjin/keys"
	"enjin/test/harness"
)

// TestDecommission joins an external ring 1 node, connects it to the real broker and
// decommissions it through the API: its live connection closes at once, its credential
// cannot reconnect, an observation it signs is refused as from an unknown node even over a
// fresh connection, and the API shows it decommissioned, for good. A reader may not
// decommission, an unknown node is 404, and a node this ring 0 runs itself is 409.
func TestDecommission(t *testing.T) {
	hb := 200 * time.Millisecond
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	hash, _ := bcrypt.GenerateFromPassword([]byte("bob-pw"), bcrypt.MinCost)
	if err := os.WriteFile(htpasswd, []byte("bob:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	asBob := "Basic " + base64.StdEncoding.EncodeToString([]byte("bob:bob-pw"))
	r := newRing0(t, hb, "--ring1", "local-a", "--htpasswd", htpasswd)
	asAdmin := "Bearer " + r.token

	const id enjin.NodeID = "ext-a"
	cfg, nc, signer := r.joinOnBus(id)
	observe := func(nc *nats.Conn) error {
		_, err := bus.SendObservation(t.Context(), nc, signer, bus.Ring1Obs(id),
			enjin.Observation{Node: id, Ring: enjin.Ring1, State: enjin.StateUp, Time: time.Now()})
		return err
	}
	if err := observe(nc); err != nil {
		t.Fatalf("observation before the decommission: %v", err)
	}
	harness.Eventually(t, 10*time.Second, func() bool { return r.nodeState(id) == "up" }, "%s up", id)
	harness.Eventually(t, 30*time.Second, func() bool { return r.nodeState("local-a") == "up" }, "local-a up")
	ops := opsEvents(t, r)

	status, _, version := r.do("GET", "/v1/nodes/"+string(id), asBob)
	if status != 200 {
		t.Fatalf("GET %s: %d", id, status)
	}
	_, _, localVersion := r.do("GET", "/v1/nodes/local-a", asBob)
	for _, tt := range []struct {
		name, path, auth, ifMatch string
		status                    int
		code                      string
	}{
		{"a reader", "/v1/nodes/" + string(id), asBob, version, 403, "forbidden"},
		{"an unknown node", "/v1/nodes/ghost", asAdmin, `"1"`, 404, "not_found"},
		{"a node this ring 0 runs", "/v1/nodes/local-a", asAdmin, localVersion, 409, "in_use"},
		{"a stale version", "/v1/nodes/" + string(id), asAdmin, `"999"`, 409, "conflict"},
	} {
		status, body, _ := r.do("DELETE", tt.path, tt.auth, "If-Match", tt.ifMatch)
		if status != tt.status || body["code"] != tt.code {
			t.Errorf("decommission by %s: got %d %v want %d %s", tt.name, status, body, tt.status, tt.code)
		}
	}
	if !nc.IsConnected() || r.nodeState("local-a") != "up" || observe(nc) != nil {
		t.Fatal("a refused decommission touched a node")
	}

	start := time.Now()
	status, body, _ := r.do("DELETE", "/v1/nodes/"+string(id), asAdmin, "If-Match", version)
	if status != 200 || body["state"] != "decommissioned" {
		t.Fatalf("decommission: %d %v", status, body)
	}
	harness.Eventually(t, 5*time.Second, nc.IsClosed, "the decommissioned node's connection closes")
	t.Logf("the decommissioned node's connection closed %v after the DELETE was sent (last error: %v)",
		time.Since(start).Round(time.Millisecond), nc.LastError())
	if _, err := bus.Connect(r.nats(), cfg.Creds, nats.MaxReconnects(0)); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("reconnecting with the decommissioned node's credential: %v, want an authorization violation", err)
	}

	// Even over a connection the node should not have, its signed observation is refused.
	chain, err := keys.Load(r.state)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := broker.IssuerFor(chain, keys.RING1)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := iss.Mint(keys.UserRequest{Name: string(id), Perms: bus.Ring1NodePerms(id)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nc2, err := bus.Connect(r.nats(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc2.Close)
	if err := observe(nc2); err == nil || !strings.Contains(err.Error(), bus.UnknownNode.String()) {
		t.Fatalf("an observation after the decommission: %v, want refused as %s", err, bus.UnknownNode)
	}

	ev := ops.next(t, "node-decommissioned")
	if ev["node"] != string(id) || ev["revoked"] != 1.0 {
		t.Errorf("event %v: want node %s, 1 key revoked", ev, id)
	}
	// Decommissioned for good: liveness does not call it down, and it cannot join again.
	time.Sleep(10 * hb)
	if s := r.nodeState(id); s != "decommissioned" {
		t.Fatalf("after ten heartbeats the node is %s, want decommissioned", s)
	}
	if status, body, _ := r.do("POST", "/v1/nodes/"+string(id)+"/join-token", asAdmin); status != 422 {
		t.Fatalf("join token for a decommissioned node: %d %v, want 422", status, body)
	}
}

// do sends a request with the given Authorization and header pairs and returns the status,
// the decoded JSON body and the ETag.
func (r *ring0Proc) do(method, path, auth string, hdr ...string) (int, map[string]any, string) {
	r.t.Helper()
	req, _ := http.NewRequest(method, r.api()+path, nil)
	req.Header.Set("Authorization", auth)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body, resp.Header.Get("ETag")
}

// opsWatch is an operator watching ring 0's events with OPS credentials from the API.
type opsWatch struct{ ch chan *nats.Msg }

func opsEvents(t *testing.T, r *ring0Proc) *opsWatch {
	t.Helper()
	var out struct {
		Creds string `json:"creds"`
	}
	if code := r.call("POST", "/v1/creds/ops", map[string]any{"name": "watcher"}, &out); code != 200 {
		t.Fatalf("ops creds: %d", code)
	}
	cr, err := keys.ParseCreds([]byte(out.Creds))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := bus.Connect(r.nats(), cr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	w := &opsWatch{ch: make(chan *nats.Msg, 64)}
	if _, err := nc.ChanSubscribe(bus.OpsEvent(">"), w.ch); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w
}

// next returns the next event of kind, skipping others.
func (w *opsWatch) next(t *testing.T, kind string) map[string]any {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m := <-w.ch:
			if m.Subject != bus.OpsEvent(kind) {
				continue
			}
			var v map[string]any
			if err := json.NewDecoder(bytes.NewReader(m.Data)).Decode(&v); err != nil {
				t.Fatalf("event %s: %v", m.Subject, err)
			}
			return v
		case <-timeout:
			t.Fatalf("no %s event within 5s", kind)
			return nil
		}
	}
}
