package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"enjin"
	"enjin/services/api"
	"enjin/services/inventory"
	"enjin/test/harness"
)

const adminToken = "test-admin-token-0123456789abcdef"

// Authorization values the tests use.
var (
	asAdmin  = "Bearer " + adminToken
	asAlice  = basic("alice", "alice-pw") // htpasswd admin
	asBob    = basic("bob", "bob-pw")     // htpasswd reader
	asWrong  = "Bearer not-the-token"
	asBadPw  = basic("alice", "nope")
	asNobody = basic("mallory", "x")
)

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// testRing0 redeems join tokens against the store and hands out fixed credentials.
type testRing0 struct {
	store   *inventory.Store
	panicOn string                    // OpsCreds panics for this name, to prove the recover middleware
	apps    string                    // base URL of a fake ring 1 app API hosting every tenant; "" none
	appsOf  map[enjin.TenantID]string // a ring 1 app API hosting one tenant, before apps
	slowOps atomic.Int64              // OpsCreds takes this many nanoseconds, to prove the routes' own timeouts
}

func (r *testRing0) Join(ctx context.Context, token, userKey, attestKey, appsKey string) (api.JoinResult, error) {
	n, err := r.store.RedeemJoinToken(ctx, token, userKey, attestKey)
	if err != nil {
		return api.JoinResult{}, err
	}
	return api.JoinResult{Node: n.ID, NATS: "nats://127.0.0.1:4222", JWT: "jwt-for-" + userKey}, nil
}

func (r *testRing0) OpsCreds(ctx context.Context, name string) ([]byte, error) {
	if r.panicOn != "" && name == r.panicOn {
		panic("ops creds for " + name)
	}
	select {
	case <-time.After(time.Duration(r.slowOps.Load())):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return []byte("-----BEGIN NATS USER JWT-----\njwt-of-" + name + "\n------END NATS USER JWT------\n"), nil
}

// Leadership: the test ring 0 never leads.
func (r *testRing0) Leadership() (string, int64) { return "test", 0 }

// CreateTenant records the tenant only: accounts and keys are ring 0's, tested there.
func (r *testRing0) CreateTenant(ctx context.Context, t enjin.TenantID, meta map[string]any) (inventory.Tenant, error) {
	return r.store.CreateTenant(ctx, inventory.Tenant{ID: t, Metadata: meta})
}

func (r *testRing0) DeleteTenant(ctx context.Context, t enjin.TenantID, version int64) error {
	return r.store.DeleteTenant(ctx, t, version)
}

// Decommission marks the node only: revocation is ring 0's, tested there (test/).
func (r *testRing0) Decommission(ctx context.Context, id enjin.NodeID, version int64) (inventory.Node, error) {
	return r.store.Decommission(ctx, id, version)
}

// AppsBackend: app operations are tested end to end (test/apps_test.go, test/hosts_test.go);
// here every tenant is hosted by the fake ring 1 at r.apps, if it is set, and by nobody
// otherwise.
func (r *testRing0) AppsBackend(ctx context.Context, t enjin.TenantID, _ string, _ bool, _ enjin.NodeID) (api.AppsBackend, error) {
	all, err := r.AppsBackends(ctx, t)
	if err != nil {
		return api.AppsBackend{}, err
	}
	if len(all) == 0 {
		return api.AppsBackend{}, fmt.Errorf("tenant %s has no app host: %w", t, inventory.ErrInvalid)
	}
	return all[0], nil
}

func (r *testRing0) AppsBackends(ctx context.Context, t enjin.TenantID) ([]api.AppsBackend, error) {
	if _, err := r.store.GetTenant(ctx, t); err != nil {
		return nil, err
	}
	if u, ok := r.appsOf[t]; ok {
		return []api.AppsBackend{{Node: "ring1-test", Base: u, Token: ring1Token}}, nil
	}
	if r.apps != "" {
		return []api.AppsBackend{{Node: "ring1-test", Base: r.apps, Token: ring1Token}}, nil
	}
	return nil, nil
}

func (r *testRing0) ForgetApp(context.Context, enjin.TenantID, string) error { return nil }

// ring1Token is the token the fake ring 1 app API takes.
const ring1Token = "ring1-apps-token"

// env is an API over a fresh database, served over TCP by the production server settings.
type env struct {
	api    *api.API
	srv    *httptest.Server
	client *http.Client // does not follow redirects
	store  *inventory.Store
	ring0  *testRing0
	panics atomic.Int64
}

// newEnv starts a PostgreSQL cluster for the test, opens a store on it and serves the API.
func newEnv(t *testing.T) *env { return newEnvWith(t, api.Timeouts{}) }

// newEnvWith is newEnv with the server's timeouts.
func newEnvWith(t *testing.T, to api.Timeouts, opts ...func(*api.Config)) *env {
	t.Helper()
	url := harness.StartPostgres(t).CreateDatabase(t, "")
	store, err := inventory.Open(t.Context(), url, harness.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	e := &env{store: store, ring0: &testRing0{store: store}}
	cfg := api.Config{Store: store, Ring0: e.ring0, Checkers: checkers(t), Logger: harness.Logger(t)}
	for _, o := range opts {
		o(&cfg)
	}
	e.api, err = api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	api.SetPanicHook(e.api, func(any) { e.panics.Add(1) })
	e.srv = httptest.NewUnstartedServer(nil)
	e.srv.Config = api.NewServer("", e.api.Handler(), to)
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	c := *e.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	e.client = &c
	return e
}

// checkers makes an admin token file and an htpasswd file with an admin (alice, $2y$) and
// a reader (bob, $2a$), at bcrypt's lowest cost to keep tests fast.
func checkers(t *testing.T) []api.Checker {
	t.Helper()
	dir := t.TempDir()
	tok := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tok, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tc, err := api.AdminTokenFile(tok)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, u := range [][2]string{{"alice", "alice-pw"}, {"bob", "bob-pw"}} {
		h, err := bcrypt.GenerateFromPassword([]byte(u[1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		if u[0] == "alice" {
			h = bytes.Replace(h, []byte("$2a$"), []byte("$2y$"), 1) // as htpasswd -B writes
		}
		lines = append(lines, u[0]+":"+string(h))
	}
	ht := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(ht, []byte("# users\n"+strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hc, err := api.HtpasswdFile(ht, []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	return []api.Checker{tc, hc}
}

// response is a response, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any // the body decoded, if it is a JSON object
}

// do sends a request; hdr holds header name/value pairs (a name may repeat).
func (e *env) do(t *testing.T, method, path string, body []byte, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	r := response{status: res.StatusCode, header: res.Header, body: b}
	_ = json.Unmarshal(b, &r.json)
	return r
}

// str reads a dotted path ("tier.id", "members.0.node") from a decoded JSON value.
func str(v any, path string) string {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i := 0
			for _, c := range k {
				i = i*10 + int(c-'0')
			}
			if i >= len(x) {
				return ""
			}
			v = x[i]
		default:
			return ""
		}
	}
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}
