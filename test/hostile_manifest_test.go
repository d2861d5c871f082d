package test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// manifestCase is a hostile app directory: its files (a Procfile that serves, unless given),
// what else to make in it, and the field the refusal must name.
type manifestCase struct {
	name  string
	files map[string]string
	make  func(dir string) error
	field string
}

func enjinJSON(s string) map[string]string { return map[string]string{"enjin.json": s} }

var manifestCases = []manifestCase{
	{"health-bad-escape", enjinJSON(`{"health":"/%zz"}`), nil, "health"},
	{"health-host", enjinJSON(`{"health":"//x"}`), nil, "health"},
	{"health-url", enjinJSON(`{"health":"http://evil/"}`), nil, "health"},
	{"health-2k", enjinJSON(`{"health":"/` + strings.Repeat("a", 2048) + `"}`), nil, "health"},
	{"health-twice", enjinJSON(`{"health":"/","health":"/x"}`), nil, "health"},
	{"pids-4m", enjinJSON(`{"pids":4000000}`), nil, "pids"},
	{"memory-1e9", enjinJSON(`{"memory_mb":1e9}`), nil, "memory_mb"},
	{"memory-fraction", enjinJSON(`{"memory_mb":1.5}`), nil, "memory_mb"},
	{"memory-negative", enjinJSON(`{"memory_mb":-1}`), nil, "memory_mb"},
	{"cpu-negative", enjinJSON(`{"cpu_millis":-500}`), nil, "cpu_millis"},
	{"disk-huge", enjinJSON(`{"disk_mb":1099511627776}`), nil, "disk_mb"},
	{"tmp-string", enjinJSON(`{"tmp_mb":"64"}`), nil, "tmp_mb"},
	{"unknown-field", enjinJSON(`{"privileged":true}`), nil, "privileged"},
	{"procfile-in-json", enjinJSON(`{"procfile":{"web":"sh"}}`), nil, "procfile"},
	{"instances-1000", enjinJSON(`{"instances":{"web":1000}}`), nil, "instances.web"},
	{"instances-undeclared", enjinJSON(`{"instances":{"worker":1}}`), nil, "instances.worker"},
	{"env-port", enjinJSON(`{"env":{"PORT":"1"}}`), nil, "env.PORT"},
	{"env-home", enjinJSON(`{"env":{"HOME":"/"}}`), nil, "env.HOME"},
	{"env-enjin", enjinJSON(`{"env":{"ENJIN_X":"1"}}`), nil, "env.ENJIN_X"},
	{"env-dash", enjinJSON(`{"env":{"A-B":"1"}}`), nil, "env.A-B"},
	{"env-40k", enjinJSON(`{"env":{"BIG":"` + strings.Repeat("x", 40<<10) + `"}}`), nil, "env.BIG"},
	{"env-nul", enjinJSON(`{"env":{"NUL":"a\u0000b"}}`), nil, "env.NUL"},
	{"networks-object", enjinJSON(`{"networks":{"db":1}}`), nil, "networks"},
	{"network-not-slug", enjinJSON(`{"networks":["../db"]}`), nil, "networks.0"},
	{"network-default", enjinJSON(`{"networks":["default"]}`), nil, "networks.0"},
	{"network-twice", enjinJSON(`{"networks":["db","db"]}`), nil, "networks.1"},
	{"networks-9", enjinJSON(`{"networks":["a","b","c","d","e","f","g","h","i"]}`), nil, "networks"},
	{"network-ruleset-injection", enjinJSON(`{"networks":[{"name":"db","rulesets":["x; flush ruleset"]}]}`), nil, "networks.0.rulesets.0"},
	{"network-unknown-field", enjinJSON(`{"networks":[{"name":"db","vni":1}]}`), nil, "networks.0.vni"},
	{"trailing-garbage", enjinJSON(`{"health":"/"} x`), nil, "enjin.json"},
	{"json-array", enjinJSON(`[]`), nil, "enjin.json"},
	{"json-latin1", enjinJSON("{\"env\":{\"X\":\"\xe9\"}}"), nil, "enjin.json"},
	{"procfile-nul", map[string]string{"Procfile": "web: ./probe serve\x00\n"}, nil, "Procfile"},
	{"procfile-17-types", map[string]string{"Procfile": manyTypes(17)}, nil, "Procfile"},
	{"procfile-type-case", map[string]string{"Procfile": "Web: ./probe serve\n"}, nil, "Procfile"},
	{"procfile-control", map[string]string{"Procfile": "web: ./probe serve \x1b[2J\n"}, nil, "web: command"},
	{"procfile-symlink", map[string]string{"Procfile": ""}, func(dir string) error {
		os.Remove(filepath.Join(dir, "Procfile"))
		os.WriteFile(filepath.Join(dir, "real"), []byte("web: ./probe serve\n"), 0o644)
		return os.Symlink("real", filepath.Join(dir, "Procfile"))
	}, "Procfile"},
	{"json-fifo", nil, func(dir string) error { return syscall.Mkfifo(filepath.Join(dir, "enjin.json"), 0o644) }, "enjin.json"},
	{"json-symlink", nil, func(dir string) error {
		os.WriteFile(filepath.Join(dir, "limits.json"), []byte(`{"memory_mb":99999}`), 0o644)
		return os.Symlink("limits.json", filepath.Join(dir, "enjin.json"))
	}, "enjin.json"},
	{"json-directory", nil, func(dir string) error { return os.Mkdir(filepath.Join(dir, "enjin.json"), 0o755) }, "enjin.json"},
}

func manyTypes(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("t" + string(rune('a'+i)) + ": ./probe serve\n")
	}
	return b.String()
}

// tarEntry is one entry of a crafted bundle.
type tarEntry struct {
	name, body, link string
	typ              byte
}

// bundleCases are tarballs the CLI would never make, posted raw with a tenant's token.
var bundleCases = []struct {
	name    string
	entries []tarEntry
	raw     []byte // instead of entries
}{
	{"dotdot", []tarEntry{{name: "Procfile", body: "web: ./probe serve\n"}, {name: "../evil", body: "x"}}, nil},
	{"dotdot-inner", []tarEntry{{name: "Procfile", body: "web: ./probe serve\n"}, {name: "a/../../evil", body: "x"}}, nil},
	{"absolute", []tarEntry{{name: "Procfile", body: "web: ./probe serve\n"}, {name: "/etc/cron.d/evil", body: "x"}}, nil},
	{"symlink-procfile", []tarEntry{{name: "Procfile", link: "/etc/passwd", typ: tar.TypeSymlink}}, nil},
	{"symlink-dir", []tarEntry{{name: "Procfile", body: "web: ./probe serve\n"}, {name: "up", link: "..", typ: tar.TypeSymlink}, {name: "up/evil", body: "x"}}, nil},
	{"hardlink", []tarEntry{{name: "Procfile", body: "web: ./probe serve\n"}, {name: "shadow", link: "/etc/shadow", typ: tar.TypeLink}}, nil},
	{"fifo-json", []tarEntry{{name: "Procfile", body: "web: ./probe serve\n"}, {name: "enjin.json", typ: tar.TypeFifo}}, nil},
	{"device", []tarEntry{{name: "Procfile", body: "web: ./probe serve\n"}, {name: "mem", typ: tar.TypeChar}}, nil},
	{"not-gzip", nil, []byte("web: ./probe serve\n")},
}

// tarball gzips a tar of entries, in order.
func tarball(t *testing.T, entries []tarEntry) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: 0o644, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar %s: %v", e.name, err)
		}
		io.WriteString(tw, e.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

// bundleOf is a bundle of regular files.
func bundleOf(t *testing.T, files map[string]string) io.Reader {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var es []tarEntry
	for _, n := range names {
		es = append(es, tarEntry{name: n, body: files[n]})
	}
	return bytes.NewReader(tarball(t, es))
}

// TestHostileManifests deploys hostile enjin.json and Procfile variants through the CLI and
// crafted tarballs through the API, next to a healthy app: each is refused naming the
// field, ring 1 never restarts, and the healthy app serves throughout.
func TestHostileManifests(t *testing.T) {
	t0 := time.Now()
	c := startHostile(t, 121)
	c.must(t, "tenants", "create", "acme")
	tok := strings.TrimSpace(c.must(t, "tenants", "token", "acme"))
	good := c.probeApp(t, "good", "web: ./probe serve\n", `{"health":"/healthz"}`)
	c.must(t, "apps", "deploy", "acme/good", good, "-q")
	c.guard("acme", "good", "acme/good release 1 ")
	c.checkUnharmed(t)
	for _, mc := range manifestCases {
		// Only a case that plays with file types carries the probe: the others are refused
		// for their contents, and a small bundle keeps that quick.
		dir := filepath.Join(c.dir, "cases", mc.name)
		if mc.make != nil {
			c.probeApp(t, filepath.Join("cases", mc.name), "web: ./probe serve\n", "")
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, ok := mc.files["Procfile"]; !ok {
			mc.files = maps.Clone(mc.files)
			if mc.files == nil {
				mc.files = map[string]string{}
			}
			mc.files["Procfile"] = "web: ./probe serve\n"
		}
		for name, body := range mc.files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if mc.make != nil {
			if err := mc.make(dir); err != nil {
				t.Fatal(err)
			}
		}
		out, err := c.as(tok, "apps", "deploy", "acme/"+mc.name, dir, "-q")
		out = strings.TrimSpace(out)
		held := err != nil && !strings.Contains(out, "\n") && strings.HasPrefix(out, "enjin: ") && strings.Contains(out, mc.field)
		c.tally.add("manifest", held)
		if !held {
			t.Errorf("WALL BROKEN (manifest): %s: enjin apps deploy: %v, want one line naming %s:\n%s", mc.name, err, mc.field, out)
		} else {
			t.Logf("%s: %s", mc.name, out)
		}
		checkNodes(t, c)
	}
	for _, bc := range bundleCases {
		body := bc.raw
		if body == nil {
			body = tarball(t, bc.entries)
		}
		code, resp := c.call("Bearer "+tok, "POST", "/v1/tenants/acme/apps/"+bc.name+"/releases", bytes.NewReader(body),
			"Content-Type", "application/gzip")
		var e struct{ Field, Error string }
		held := json.Unmarshal([]byte(resp), &e) == nil && code >= 400 && code < 500 && e.Field == "bundle"
		c.tally.add("bundle", held)
		if !held {
			t.Errorf("WALL BROKEN (bundle): %s: POST a crafted bundle: %d %s, want 4xx JSON with field bundle", bc.name, code, strings.TrimSpace(resp))
		} else {
			t.Logf("%s: %d %s", bc.name, code, e.Error)
		}
		checkNodes(t, c)
	}
	total, accepted := c.tally.report(t)
	t.Logf("hostile manifests: %d deployed, %d refused naming the field; ring 1 pid %d unchanged; acme/good served throughout (%v)",
		total, total-accepted, c.ring1, time.Since(t0).Round(time.Second))
	if total < 20 {
		t.Errorf("%d hostile manifests, want at least 20", total)
	}
}

// checkNodes checks ring 1 and the guarded apps, and that `enjin nodes` shows ring1-local up.
func checkNodes(t *testing.T, c *hostileCloud) {
	t.Helper()
	c.checkUnharmed(t)
	out := c.must(t, "nodes")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "ring1-local" {
			if !strings.Contains(l, " up ") && !strings.HasSuffix(strings.TrimSpace(l), " up") {
				t.Fatalf("enjin nodes: ring1-local is not up:\n%s", out)
			}
			return
		}
	}
	t.Fatalf("enjin nodes does not list ring1-local:\n%s", out)
}
