package ring1_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/rings/ring1"
	"enjin/test/harness"
)

// joinServer stands in for ring 0's /v1/join: each token may be used once; it mints a real
// RING1 credential for the key the node presents and registers the node's attestation key.
type joinServer struct {
	c      *harness.Cloud
	iss    *keys.Issuer
	r0     *ring0
	mu     sync.Mutex
	tokens map[string]enjin.NodeID // unused tokens
	wrong  string                  // a token answered with a credential for another key
}

func (s *joinServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/join" {
		reply(w, http.StatusNotFound, map[string]string{"error": "not found"})
		return
	}
	var req ring1.JoinRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.mu.Lock()
	id, ok := s.tokens[req.Token]
	delete(s.tokens, req.Token)
	s.mu.Unlock()
	if !ok {
		reply(w, http.StatusForbidden, map[string]string{"error": "token already used"})
		return
	}
	key := req.UserKey
	if req.Token == s.wrong {
		key = "" // mint for a key of ring 0's choosing
	}
	cr, err := s.iss.Mint(keys.UserRequest{Name: string(id), PublicKey: key, Perms: bus.Ring1NodePerms(id)}, time.Now())
	if err == nil {
		err = s.r0.v.Register(id, req.AttestKey, 0)
	}
	if err != nil {
		reply(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	reply(w, http.StatusOK, ring1.JoinReply{Node: id, NATS: s.c.URL, JWT: cr.JWT})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// A node joins with a one-time token, stores its keys, and its heartbeats reach ring 0
// verified under the attestation key it presented.
func TestJoin(t *testing.T) {
	c := harness.StartBroker(t)
	r0 := listen(t, c)
	js := &joinServer{c: c, iss: c.Ring1NodeIssuer(t), r0: r0,
		tokens: map[string]enjin.NodeID{"tok-1": "n7", "tok-wrong": "n8"}, wrong: "tok-wrong"}
	srv := httptest.NewServer(js)
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	cfg, err := ring1.Join(t.Context(), srv.URL+"/", "tok-1", dir, srv.Client())
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if cfg.Node != "n7" || cfg.NATSURL != c.URL || cfg.Heartbeat != 0 || cfg.Creds == nil || cfg.Attestation == nil {
		t.Fatalf("config %+v: want node n7 at %s with creds and attestation", cfg, c.URL)
	}
	att, err := keys.LoadAttestation(filepath.Join(dir, ring1.AttestFile))
	if err != nil || att.Public() != cfg.Attestation.Public() {
		t.Errorf("stored attestation key: got %v, %v; want %s", att, err, cfg.Attestation.Public())
	}
	cr, err := keys.LoadCreds(filepath.Join(dir, ring1.CredsFile)) // refuses modes other than 0600
	if err != nil || cr.PublicKey != cfg.Creds.PublicKey || cr.JWT != cfg.Creds.JWT || cr.Name != "n7" {
		t.Errorf("stored creds: got %+v, %v; want those of the config", cr, err)
	}

	n := start(t, cfg)
	harness.Eventually(t, 10*time.Second, func() bool {
		k, obs := r0.seen()
		return k > 0 && obs.Node == "n7" && n.Stats().Acked > 0
	}, "a verified, acknowledged heartbeat from the joined node")

	// A token works once, and a failed join leaves no key behind.
	for _, tc := range []struct{ name, token, want string }{
		{"used token", "tok-1", "token already used"},
		{"credential for another key", "tok-wrong", "not the key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := ring1.Join(t.Context(), srv.URL, tc.token, dir, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("join: got %v, want an error containing %q", err, tc.want)
			}
			t.Logf("join refused: %v", err)
			for _, f := range []string{ring1.AttestFile, ring1.CredsFile} {
				if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s after a failed join: got %v, want it absent", f, err)
				}
			}
		})
	}
	if _, err := ring1.Join(t.Context(), srv.URL, "tok-new", dir, nil); err == nil || !errors.Is(err, fs.ErrExist) {
		t.Errorf("join into a joined node's directory: got %v, want fs.ErrExist", err)
	}
	if att, err := keys.LoadAttestation(filepath.Join(dir, ring1.AttestFile)); err != nil || att.Public() != cfg.Attestation.Public() {
		t.Errorf("attestation key after the refused second join: got %v, %v; want it unchanged", att, err)
	}
}
