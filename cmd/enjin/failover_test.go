package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With the member it names down, the CLI goes on to the next of the members endpoints.json
// lists — a read, and a write whose body is sent again whole — and keeps to the one that
// answered. A member that answers with a refusal is not skipped: the refusal is the answer.
func TestClientFailsOver(t *testing.T) {
	dead := func() string { // a port nobody listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		return "http://" + ln.Addr().String()
	}
	live := newFakeAPI(t, nil)
	state := t.TempDir()
	tok := filepath.Join(state, "admin.token")
	os.WriteFile(tok, []byte("admin-secret\n"), 0o600)
	first, second := dead(), dead()
	b, _ := json.Marshal(Endpoints{API: first, APIs: []string{first, second, live.URL}, AdminTokenFile: tok})
	os.WriteFile(filepath.Join(state, "endpoints.json"), b, 0o600)

	if out, errOut, code := enjinIn(t, "", "nodes", "--state-dir", state); code != 0 {
		t.Fatalf("nodes past two dead members: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := enjinIn(t, "", "tenants", "create", "acme", "--state-dir", state); code != 0 {
		t.Fatalf("tenants create past two dead members: exit %d %s", code, errOut)
	}
	r := live.requests()
	if len(r) != 2 || r[0].Path != "/v1/nodes" || r[1].Method != "POST" || !strings.Contains(r[1].Body, `"acme"`) ||
		r[1].Header.Get("Authorization") != "Bearer admin-secret" {
		t.Fatalf("the live member saw %+v; want the read and the write, body and token whole", r)
	}

	// A member that answers with a refusal is not skipped: the refusal is the answer.
	refusing := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"credentials refused","code":"unauthorized"}`)
	})
	b, _ = json.Marshal(Endpoints{API: refusing.URL, APIs: []string{refusing.URL, live.URL}, AdminTokenFile: tok})
	os.WriteFile(filepath.Join(state, "endpoints.json"), b, 0o600)
	if _, errOut, code := enjinIn(t, "", "nodes", "--state-dir", state); code == 0 || !strings.Contains(errOut, "credentials refused") || len(live.requests()) != 2 {
		t.Fatalf("a refusing member: exit %d %q, the next saw %d requests; want the refusal, nothing sent on", code, errOut, len(live.requests()))
	}

	// Only members listed: with none that answers, the error names the last one tried.
	b, _ = json.Marshal(Endpoints{API: first, APIs: []string{first, second}, AdminTokenFile: tok})
	os.WriteFile(filepath.Join(state, "endpoints.json"), b, 0o600)
	if _, errOut, code := enjinIn(t, "", "nodes", "--state-dir", state); code == 0 || !strings.Contains(errOut, strings.TrimPrefix(second, "http://")) ||
		strings.Count(errOut, "\n") != 1 {
		t.Fatalf("no member answers: exit %d %q; want one line naming %s", code, errOut, second)
	}
}
