package test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"enjin/test/harness"
)

// TestBackupRestore backs up a running cloud — a tenant, a deployed app with a file its job
// wrote in HOME, a compartment holding a second node, and their observations — with
// `enjin backup` (a failed one leaves no file), stops it and loses its state dir, restores the file with `enjin restore`
// into a new one and runs `enjin up` there on other ports: the same nodes, compartments,
// tenants, apps and signed observations are listed, the app serves through the router, the
// HOME file is back, and `enjin verify` passes. A tampered file, a corrupted one, a file of
// another format and a non-empty target are each refused in one line, leaving nothing.
func TestBackupRestore(t *testing.T) {
	c := newCloud(t)
	c.start()
	c.deploySamples("acme/web")
	bin := harness.Binary(t)
	if out, err := exec.Command(bin, "run", "acme/web", "--state-dir", c.state, "--", "echo kept > $HOME/backed-up").CombinedOutput(); err != nil {
		t.Fatalf("enjin run: %v\n%s", err, out)
	}
	var comp struct{ ID string }
	if err := json.Unmarshal([]byte(c.cli("compartments", "create", "--type", "rack", "--label", "rack-1", "-o", "json")), &comp); err != nil || comp.ID == "" {
		t.Fatalf("compartments create: %v", err)
	}
	if code, b := c.apiDo("POST", "/v1/nodes", map[string]any{"id": "edge-1", "ring": 1, "supervision_strategy": "external",
		"observation_strategy": "self", "compartment": comp.ID}); code != 201 {
		t.Fatalf("register edge-1: %d %s", code, b)
	}
	c.waitServing([]string{"acme/web"})
	before, obs := c.listings(), c.observations("ring1-local", 0)

	file := filepath.Join(c.dir, "backups", "cloud.enjin")
	os.Mkdir(filepath.Dir(file), 0o700)
	t0 := time.Now()
	out := c.cli("backup", "--out", file)
	took := time.Since(t0)
	if !strings.Contains(out, "1 HOME images (1 frozen while copied)") {
		t.Fatalf("enjin backup of a running cloud with one app: %s", out)
	}
	info, err := os.Stat(file)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the backup file: %v, mode %v; want 0600", err, info.Mode())
	}
	if es, _ := os.ReadDir(filepath.Dir(file)); len(es) != 1 {
		t.Fatalf("beside the backup file: %v; want nothing (no temporary file left)", es)
	}
	t.Logf("enjin backup (online) in %v: %s", took.Round(time.Millisecond), strings.TrimSpace(out))
	// A backup that fails (here: its database is not there) leaves no file, not even half of one.
	bad, err := exec.Command(bin, "backup", "--out", filepath.Join(filepath.Dir(file), "failed.enjin"), "--state-dir", c.state,
		"--database-url", "postgres://postgres@/enjin?host=/nonexistent&sslmode=disable").CombinedOutput()
	if err == nil || strings.Count(strings.TrimSpace(string(bad)), "\n") != 0 {
		t.Fatalf("a backup from a database that is not there: %v, want exit 1 and one line:\n%s", err, bad)
	}
	if es, _ := os.ReadDir(filepath.Dir(file)); len(es) != 1 {
		t.Fatalf("a failed backup left %v", es)
	}
	t.Logf("failed backup: %s", strings.TrimSpace(string(bad)))

	// The machine loses the cloud: its state dir goes, and with it the uids its apps held.
	c.proc.Stop(time.Minute)
	harness.StopDetached(t, c.state)
	home := filepath.Join(c.state, "nodes", "ring1-local", "apps", "apps", "acme", "web", "home")
	harness.Eventually(t, 30*time.Second, func() bool { return !isMount(home) }, "HOME unmounted once the cloud stopped")
	if err := os.RemoveAll(c.state); err != nil {
		t.Fatal(err)
	}

	restoreRefusals(t, bin, file, c.dir)

	r := c.elsewhere(filepath.Join(c.dir, "restored"))
	t0 = time.Now()
	if out, err := exec.Command(bin, "restore", file, "--state-dir", r.state).CombinedOutput(); err != nil {
		t.Fatalf("enjin restore: %v\n%s", err, out)
	}
	t.Logf("enjin restore in %v", time.Since(t0).Round(time.Millisecond))
	r.start()
	if r.ep.API == c.ep.API || r.ep.Router == c.ep.Router {
		t.Fatalf("the restored cloud listens where the first did: %v %v", r.ep.API, r.ep.Router)
	}
	after, nodesBefore := r.listings(), len(strings.Split(before["nodes"], "\n"))
	for _, n := range strings.Split(before["nodes"], "\n") { // and the instances the app starts anew
		if !slices.Contains(strings.Split(after["nodes"], "\n"), n) {
			t.Errorf("node %s is not there after the restore:\n%s", n, after["nodes"])
		}
	}
	delete(before, "nodes")
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s after the restore:\n%s\nwant, as before:\n%s", k, after[k], v)
		}
	}
	got := r.observations("ring1-local", slices.Max(slices.Collect(maps.Keys(obs)))+1)
	for seq, o := range obs {
		if got[seq] != o {
			t.Errorf("observation %d of ring1-local after the restore: %.300s, want %.300s", seq, got[seq], o)
		}
	}
	r.waitServing([]string{"acme/web"})
	if out, err := exec.Command(bin, "run", "acme/web", "--state-dir", r.state, "--", "cat $HOME/backed-up").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "kept" {
		t.Fatalf("the HOME file after the restore: %v %q", err, out)
	}
	out = r.cli("verify")
	if !strings.Contains(out, " 0 failed") {
		t.Fatalf("enjin verify after the restore:\n%s", out)
	}
	t.Logf("restored: %d nodes (%d before), %d observations of ring1-local as before; %s", len(strings.Split(after["nodes"], "\n")), nodesBefore, len(obs), strings.TrimSpace(out))
}

// restoreRefusals restores a tampered copy of the backup file, a corrupted one and a file of
// another format, into a new dir each, and the good file into a non-empty dir: each is one
// line and a non-zero exit, and no dir is left (the non-empty one keeps just what it had).
func restoreRefusals(t *testing.T, bin, file, dir string) {
	t.Helper()
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := slices.Clone(good)
	corrupt[len(corrupt)/2] ^= 0x40
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := filepath.Join(dir, "full")
	os.Mkdir(full, 0o700)
	os.WriteFile(filepath.Join(full, "mine"), []byte("x"), 0o600)
	for _, tc := range []struct {
		name, file, target, want string
	}{
		{"tampered", write("tampered.enjin", tamper(t, good, "state/admin.token")), filepath.Join(dir, "t1"), `"state/admin.token": its sha256 does not match the manifest`},
		{"corrupted", write("corrupt.enjin", corrupt), filepath.Join(dir, "t2"), "nothing restored"},
		{"wrong format", write("notes.txt", []byte("a shopping list\n")), filepath.Join(dir, "t3"), "not an enjin backup"},
		{"a tar of another kind", write("other.enjin", zstdTar(t)), filepath.Join(dir, "t4"), "not an enjin backup"},
		{"non-empty target", file, full, "is not empty"},
	} {
		out, err := exec.Command(bin, "restore", tc.file, "--state-dir", tc.target).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("restore a %s file: %v, want exit 1 and one line saying %q:\n%s", tc.name, err, tc.want, out)
		}
		if tc.target == full {
			if es, _ := os.ReadDir(full); len(es) != 1 {
				t.Errorf("the non-empty target after a refused restore holds %v, want just what it had", es)
			}
		} else if _, err := os.Stat(tc.target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("restore of a %s file left %s behind (%v)", tc.name, tc.target, err)
		}
		t.Logf("%s: %s", tc.name, strings.TrimSpace(string(out)))
	}
}

// tamper returns the backup b with one byte of entry name's content changed, recompressed:
// its zstd stream and tar are sound, only its sha256 no longer matches the manifest's.
func tamper(t *testing.T, b []byte, name string) []byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var out bytes.Buffer
	zw, _ := zstd.NewWriter(&out)
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	found := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if hdr.Name == name && len(body) > 0 {
			body[0] ^= 1
			found = true
		}
		tw.WriteHeader(hdr)
		tw.Write(body)
	}
	tw.Close()
	zw.Close()
	if !found {
		t.Fatalf("no entry %s in the backup", name)
	}
	return out.Bytes()
}

// zstdTar is a zstd-compressed tar that is no backup.
func zstdTar(t *testing.T) []byte {
	var out bytes.Buffer
	zw, _ := zstd.NewWriter(&out)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "state/keys/operator.seed", Mode: 0o600, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("x\n"))
	tw.Close()
	zw.Close()
	return out.Bytes()
}

// elsewhere is a cloud on state with c's bridge and addresses for apps, on other ports.
func (c *cloud) elsewhere(state string) *cloud {
	r := *c
	r.state, r.proc, r.ep = state, nil, endpoints{}
	r.args = slices.Clone(c.args)
	for i := 0; i+1 < len(r.args); i++ {
		switch r.args[i] {
		case "--state-dir":
			r.args[i+1] = state
		case "--nats-port":
			r.args[i+1] = strconv.Itoa(harness.FreePort(c.t))
		case "--api-addr", "--router", "--dns":
			r.args[i+1] = "127.0.0.1:" + strconv.Itoa(harness.FreePort(c.t))
		}
	}
	c.t.Cleanup(func() { harness.StopDetached(c.t, state) })
	return &r
}

// listings are what the API lists of the cloud, less what changes while it runs (node
// states, sequence numbers): one line per node, tenant, compartment and app.
func (c *cloud) listings() map[string]string {
	c.t.Helper()
	get := func(path string, into any) {
		c.t.Helper()
		b, err := c.apiGet(path)
		if err != nil || json.Unmarshal(b, into) != nil {
			c.t.Fatalf("GET %s: %v %s", path, err, b)
		}
	}
	var nodes struct {
		Nodes []struct {
			ID, Label, Compartment string
			AuthPub                string `json:"auth_pub"`
			AttestPub              string `json:"attest_pub"`
			Supervision            string `json:"supervision_strategy"`
			Created                string `json:"created_at"`
		}
	}
	get("/v1/nodes", &nodes)
	var ls []string
	for _, n := range nodes.Nodes {
		ls = append(ls, fmt.Sprintf("%s %q %s %s %s %s %s", n.ID, n.Label, n.Compartment, n.Supervision, n.AuthPub, n.AttestPub, n.Created))
	}
	var tenants, comps json.RawMessage
	get("/v1/tenants", &tenants)
	get("/v1/compartments", &comps)
	var al struct {
		Apps []struct {
			Name    string
			Release int
		}
	}
	get("/v1/tenants/acme/apps", &al)
	return map[string]string{"nodes": strings.Join(ls, "\n"), "tenants": string(tenants), "compartments": string(comps),
		"apps": fmt.Sprint(al.Apps)}
}

// observations are a node's newest stored observations (at most 1000), by sequence number;
// with before > 0, those below it.
func (c *cloud) observations(node string, before uint64) map[uint64]string {
	c.t.Helper()
	q := "?limit=1000"
	if before > 0 {
		q += "&before=" + strconv.FormatUint(before, 10)
	}
	b, err := c.apiGet("/v1/nodes/" + node + "/observations" + q)
	var l struct{ Observations []json.RawMessage }
	if err != nil || json.Unmarshal(b, &l) != nil || len(l.Observations) == 0 {
		c.t.Fatalf("observations of %s: %v %.300s", node, err, b)
	}
	m := map[uint64]string{}
	for _, o := range l.Observations {
		var s struct{ Seq uint64 }
		json.Unmarshal(o, &s)
		m[s.Seq] = string(o)
	}
	return m
}

// isMount reports whether dir is a mount point in this process's mount table.
func isMount(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for l := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}
