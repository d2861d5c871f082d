package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"enjin/services/backup"
	"enjin/test/harness"
)

// TestScheduledBackups schedules backups as the system tenant's job (every 2 s, keeping 2)
// and checks that it runs in a sandbox, reaches ring 0's API only through its node's relay
// with a credential that may fetch backups and nothing else, keeps the newest two whole
// backups in its HOME, and that nobody else can use what it holds: the backup credential on
// any other route, a tenant's token on the backup route, a tenant's sandbox (holding the
// stolen credential) on the relay, the system tenant's name.
func TestScheduledBackups(t *testing.T) {
	c := newCloud(t)
	c.start()
	c.deploySamples("acme/web")
	c.waitServing([]string{"acme/web"})
	bin := harness.Binary(t)
	if out, err := exec.Command(bin, "run", "acme/web", "--state-dir", c.state, "--", "echo kept > $HOME/backed-up").CombinedOutput(); err != nil {
		t.Fatalf("enjin run: %v\n%s", err, out)
	}

	t0 := time.Now()
	out := c.cli("backups", "schedule", "@every 2s", "--keep", "2")
	if !strings.Contains(out, "backups scheduled: @every 2s, keeping 2") {
		t.Fatalf("backups schedule: %s", out)
	}
	t.Logf("backups schedule in %v: %s", time.Since(t0).Round(time.Millisecond), strings.TrimSpace(out))

	// Three runs, the last one a success.
	var runs int
	harness.Eventually(t, 90*time.Second, func() bool {
		var l struct {
			Cron []struct {
				Runs int `json:"runs"`
				Last *struct {
					Exit  int    `json:"exit"`
					Error string `json:"error"`
				} `json:"last"`
			} `json:"cron"`
		}
		if json.Unmarshal([]byte(c.cli("apps", "cron", "enjin/backups", "-o", "json")), &l) != nil || len(l.Cron) != 1 {
			return false
		}
		j := l.Cron[0]
		if j.Last != nil && j.Last.Exit != 0 {
			logs, _ := exec.Command(bin, "logs", "enjin/backups", "--state-dir", c.state).CombinedOutput()
			t.Fatalf("the backup job failed: exit %d %s; its log:\n%s", j.Last.Exit, j.Last.Error, logs)
		}
		runs = j.Runs
		return runs >= 3
	}, "three runs of the backup job")
	t.Logf("%d runs of the backup job %v after it was scheduled", runs, time.Since(t0).Round(time.Second))

	// Two backups kept, in the job's HOME, each whole: the tenant's HOME is in, the job's is not.
	dir := filepath.Join(c.state, "nodes", "ring1-local", "apps", "apps", "enjin", "backups", "home", "backups")
	var kept []string
	harness.Eventually(t, 30*time.Second, func() bool {
		kept, _ = filepath.Glob(filepath.Join(dir, "enjin-*.enjin"))
		return len(kept) == 2
	}, "two backups kept in %s", dir)
	f, err := os.Open(kept[1])
	if err != nil {
		t.Fatal(err)
	}
	m, err := backup.Check(context.Background(), f)
	info, _ := f.Stat()
	f.Close() // an open file would keep the job's HOME from being unmounted when it is destroyed
	if err != nil {
		t.Fatalf("the newest backup: %v", err)
	}
	var names []string
	for _, e := range m.Entries {
		names = append(names, e.Name)
	}
	if !slices.Contains(names, "state/nodes/ring1-local/apps/apps/acme/web/home.img") {
		t.Errorf("the backup holds no HOME of acme/web: %v", names)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "state/nodes/ring1-local/apps/apps/enjin/backups/home") {
			t.Errorf("the backup holds the backup job's own HOME: %s", n)
		}
	}
	t.Logf("kept %d backups; the newest %s: %.1f MiB, %d entries, checked", len(kept), filepath.Base(kept[1]), float64(info.Size())/(1<<20), len(m.Entries))
	ls := c.cli("backups", "ls")
	// Two, or three for the moment between a run's rename and its prune.
	if n := strings.Count(ls, ".enjin\n"); n < 2 || n > 3 || !strings.Contains(ls, "@every 2s") {
		t.Errorf("backups ls: want the backups kept and the job's schedule:\n%s", ls)
	}

	// The credential, as the job holds it.
	var env struct{ Env map[string]string }
	envOut := c.cli("apps", "env", "enjin/backups", "--reveal", "-o", "json")
	if err := json.Unmarshal([]byte(envOut), &env); err != nil || !strings.HasPrefix(env.Env["BACKUP_TOKEN"], "eb_") {
		t.Fatalf("the job's environment: %v %s", err, envOut)
	}
	stolen := env.Env["BACKUP_TOKEN"]
	backupWalls(t, c, stolen)

	// A tenant's sandbox holding the stolen credential: the relay is not there for it, nor is
	// the node's enjin binary (its own copy serves instead).
	if out, err := exec.Command(bin, "run", "acme/web", "--state-dir", c.state, "--", "test ! -e /opt/enjin/enjin").CombinedOutput(); err != nil {
		t.Errorf("a tenant's sandbox sees the node's enjin binary: %v %s", err, out)
	}
	thief := filepath.Join(c.dir, "thief")
	os.MkdirAll(thief, 0o755)
	copyBinary(t, bin, filepath.Join(thief, "enjin"))
	os.WriteFile(filepath.Join(thief, "Procfile"), []byte("fetch: sleep 3600\n"), 0o644)
	os.WriteFile(filepath.Join(thief, "enjin.json"), []byte(`{"instances": {"fetch": 0}}`), 0o644)
	c.cli("apps", "deploy", "acme/thief", thief, "-q")
	relay := fmt.Sprintf("http://%s:4280", c.gateway())
	got, err := exec.Command(bin, "run", "acme/thief", "--state-dir", c.state, "--",
		"ENJIN_TOKEN="+stolen, "./enjin", "--api", relay, "backups", "fetch", "--out", "$HOME/b.enjin").CombinedOutput()
	if err == nil || !strings.Contains(string(got), "connection refused") {
		t.Errorf("a tenant's sandbox fetching through the relay with the stolen credential: %v\n%s\nwant it refused at the firewall", err, got)
	}
	t.Logf("a tenant's sandbox with the stolen credential, on the relay: %s", strings.TrimSpace(string(got)))

	// Unscheduled: the credential is revoked, the job gone.
	c.cli("backups", "unschedule")
	if code, _ := c.bearer("GET", "/v1/backup", stolen); code != http.StatusUnauthorized {
		t.Errorf("the revoked credential on GET /v1/backup: %d, want 401", code)
	}
	if code, b := c.apiDo("GET", "/v1/tenants/enjin/apps", nil); code != http.StatusOK || strings.Contains(string(b), `"backups"`) {
		t.Errorf("the system tenant's apps after unschedule: %d %s, want none", code, b)
	}
}

// backupWalls checks what the backup credential, a tenant's token and the system tenant's
// name may and may not do.
func backupWalls(t *testing.T, c *cloud, tok string) {
	t.Helper()
	refused := 0
	for _, r := range [][2]string{{"GET", "/v1/tenants"}, {"GET", "/v1/nodes"}, {"GET", "/v1/tenants/acme/apps"},
		{"GET", "/v1/tenants/enjin/apps/backups/env"}, {"POST", "/v1/system/backups"}, {"DELETE", "/v1/system/backups"},
		{"POST", "/v1/tenants"}, {"GET", "/v1/observations/latest"}} {
		if code, b := c.bearer(r[0], r[1], tok); code != http.StatusForbidden {
			t.Errorf("the backup credential on %s %s: %d %s, want 403", r[0], r[1], code, b)
		} else {
			refused++
		}
	}
	if code, _ := c.bearer("GET", "/v1/backup", tok); code != http.StatusOK {
		t.Errorf("the backup credential on GET /v1/backup: %d, want 200", code)
	}
	var tt struct{ Token string }
	if code, b := c.apiDo("POST", "/v1/tenants/acme/tokens", map[string]string{"name": "t"}); code != 201 || json.Unmarshal(b, &tt) != nil {
		t.Fatalf("tenant token: %d %s", code, b)
	}
	if code, b := c.bearer("GET", "/v1/backup", tt.Token); code != http.StatusForbidden {
		t.Errorf("a tenant's token on GET /v1/backup: %d %s, want 403", code, b)
	}
	if code, b := c.apiDo("POST", "/v1/tenants", map[string]string{"name": "enjin"}); code != http.StatusConflict || !strings.Contains(string(b), `"reserved"`) {
		t.Errorf("creating a tenant named enjin: %d %s, want 409 reserved", code, b)
	}
	if code, b := c.apiDo("POST", "/v1/tenants/enjin/tokens", map[string]string{"name": "t"}); code != http.StatusConflict {
		t.Errorf("a tenant token for the system tenant: %d %s, want 409", code, b)
	}
	t.Logf("the backup credential: %d other routes refused (403), GET /v1/backup 200; a tenant token on it 403; the name enjin reserved", refused)
}

// bearer sends a request with tok as the bearer and reads the answer to its end.
func (c *cloud) bearer(method, path, tok string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.ep.API+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.ep.client(c.t).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, string(b)
}

// gateway is the apps bridge's address: the host, as sandboxes see it.
func (c *cloud) gateway() string {
	i := slices.Index(c.args, "--prefix")
	p := strings.TrimSuffix(c.args[i+1], "0/24")
	return p + "1"
}

func copyBinary(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
}
