package api_test

import (
	"errors"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"enjin"
	"enjin/services/apphost"
	"enjin/supervisors/sandbox"
	"enjin/test/harness"
)

// realRing1 serves a real apphost's app API, for apps that run no instance: every answer
// but a job's or an instance's is apphost's own, made without a sandbox. Starting an
// instance fails (its cgroups are none), which no step asks for.
func realRing1(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(realHost(t).Handler(ring1Token))
	t.Cleanup(srv.Close)
	return srv.URL
}

// realHost is a real apphost, for apps that run no instance (see realRing1).
func realHost(t *testing.T) *apphost.Host {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "enjin-api-ring1-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h, err := apphost.New(apphost.Config{Dir: dir, Node: "ring1-real", Helper: "/nonexistent/enjin",
		Network: &sandbox.Network{Bridge: "enj-unused", Prefix: netip.MustParsePrefix("100.91.0.0/24")},
		Cgroups: noCgroups{}, Router: noRouter{}, UIDRegistry: filepath.Join(dir, "uids"), Logger: harness.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() }) // unmounts the apps' HOMEs
	return h
}

// workerBundle is a bundle whose only process type runs no instance by default.
func workerBundle(t *testing.T) []byte {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Procfile"), []byte("worker: sleep 60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := apphost.Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var errNoCgroups = errors.New("no cgroups in this test")

type noCgroups struct{}

func (noCgroups) Create(string, sandbox.Limits) ([]string, error) { return nil, errNoCgroups }
func (noCgroups) Usage(string) (uint64, uint64, error)            { return 0, 0, errNoCgroups }
func (noCgroups) OOMKills(string) uint64                          { return 0 }
func (noCgroups) Kill(string) error                               { return nil }
func (noCgroups) Remove(string) error                             { return nil }
func (noCgroups) List() ([]string, error)                         { return nil, nil }
func (noCgroups) Version() int                                    { return 2 }

type noRouter struct{}

func (noRouter) SetRoute(string, string, []apphost.Route) {}
func (noRouter) RemoveRoute(string, string)               {}
func (noRouter) Inflight(string) int64                    { return 0 }
func (noRouter) Drained() <-chan struct{}                 { return nil }

// realAppSteps drive the app routes through ring 0 to a real apphost at url, for tenant real.
func realAppSteps(t *testing.T, e *env, url string) []step {
	p := "/v1/tenants/real/apps"
	gz := []string{"Content-Type", "application/gzip"}
	bundle := string(workerBundle(t))
	return []step{
		{name: "real: tenant", method: "POST", path: "/v1/tenants", auth: asAdmin, body: `{"name":"real"}`, status: 201,
			before: func(*testing.T, map[string]string) { e.ring0.appsOf = map[enjin.TenantID]string{"real": url} }},
		{name: "real: no apps", method: "GET", path: p, auth: asBob, status: 200, check: count("apps", 0)},
		{name: "real: deploy", method: "POST", path: p + "/solo/releases", auth: asAdmin, hdr: gz, body: bundle, status: 201, check: want("number", "1", "status", "live")},
		{name: "real: deploy no bundle", method: "POST", path: p + "/solo/releases", auth: asAdmin, hdr: gz, body: "not gzip", status: 422, code: "invalid"},
		{name: "real: deploy, as it happens", method: "POST", path: p + "/solo/releases", auth: asAdmin, hdr: append([]string{"Accept", "application/x-ndjson"}, gz...), body: bundle, status: 200},
		{name: "real: apps", method: "GET", path: p, auth: asBob, status: 200, check: want("apps.0.name", "solo", "apps.0.node", "ring1-test")},
		{name: "real: releases", method: "GET", path: p + "/solo/releases", auth: asBob, status: 200},
		{name: "real: releases of no app", method: "GET", path: p + "/nope/releases", auth: asBob, status: 404, code: "not_found"},
		{name: "real: files", method: "POST", path: p + "/solo/files", auth: asAdmin, body: `{"digests":["sha256-00"]}`, status: 200},
		{name: "real: files, a bad body", method: "POST", path: p + "/solo/files", auth: asAdmin, body: `{"digests":7}`, status: 422, code: "invalid"},
		{name: "real: rollback", method: "POST", path: p + "/solo/rollback", auth: asAdmin, body: `{"release":1}`, status: 200},
		{name: "real: rollback to no release", method: "POST", path: p + "/solo/rollback", auth: asAdmin, body: `{"release":99}`, status: 404},
		{name: "real: instances", method: "GET", path: p + "/solo/instances", auth: asBob, status: 200},
		{name: "real: scale", method: "PUT", path: p + "/solo/scale/worker", auth: asAdmin, body: `{"instances":0}`, status: 200},
		{name: "real: scale, no count", method: "PUT", path: p + "/solo/scale/worker", auth: asAdmin, body: `{}`, status: 400},
		{name: "real: env", method: "GET", path: p + "/solo/env?reveal=1", auth: asAdmin, status: 200},
		{name: "real: replace env", method: "PUT", path: p + "/solo/env", auth: asAdmin, body: `{"env":{"A":"1"}}`, status: 200},
		{name: "real: replace env, an unknown field", method: "PUT", path: p + "/solo/env", auth: asAdmin, body: `{"vars":{}}`, status: 400},
		{name: "real: change env", method: "PATCH", path: p + "/solo/env", auth: asAdmin, body: `{"set":{"B":"2"},"unset":["A"]}`, status: 200},
		{name: "real: change env, a bad name", method: "PATCH", path: p + "/solo/env", auth: asAdmin, body: `{"set":{"1 x":"2"}}`, status: 422},
		{name: "real: job in no app", method: "POST", path: p + "/nope/run", auth: asAdmin, body: `{"command":"true"}`, status: 404},
		{name: "real: cron", method: "GET", path: p + "/solo/cron", auth: asBob, status: 200},
		{name: "real: logs", method: "GET", path: p + "/solo/logs", auth: asBob, status: 200},
		{name: "real: destroy", method: "DELETE", path: p + "/solo", auth: asAdmin, status: 204},
		{name: "real: destroy again", method: "DELETE", path: p + "/solo", auth: asAdmin, status: 404},
	}
}
