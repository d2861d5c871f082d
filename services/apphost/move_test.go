package apphost_test

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"strings"
	"testing"

	"enjin/services/apphost"
)

// An exported app runs elsewhere as it ran: its live release's package, environment and
// scale. An import of an app the host has is ErrExists; one whose release never gets
// healthy (the recipe's environment is applied from its first start) leaves nothing behind,
// so it can be tried again; a release made from a delta, which keeps no package, exports its
// files packed anew; have= leaves the package out; what is not an export is refused.
func TestExportAndImport(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	b := bundle(t, "web: ./sampleapp\nworker: ./sampleapp\n", `{"health":"/healthz","memory_mb":64}`)
	if _, err := w.deploy(ctx, "acme", "web", b); err != nil {
		t.Fatal(err)
	}
	if _, err := w.host.SetEnv(ctx, "acme", "web", map[string]string{"GREETING": "hi"}, nil, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.host.Scale(ctx, "acme", "web", "web", 2); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := w.host.Export(&out, "acme", "web", ""); err != nil {
		t.Fatal(err)
	}
	rec, pkg, err := apphost.ReadExport(bytes.NewReader(out.Bytes()), apphost.MaxBundle)
	if err != nil || rec.Release != 2 || rec.Env["GREETING"] != "hi" || rec.Scale["web"] != 2 || len(pkg) == 0 {
		t.Fatalf("export: %+v, %d bytes of package, %v", rec, len(pkg), err)
	}
	if d, _ := apphost.Digest(pkg); d != rec.Digest {
		t.Fatalf("the exported package is %s, the release's %s", d, rec.Digest)
	}
	out.Reset()
	if err := w.host.Export(&out, "acme", "web", rec.Digest); err != nil {
		t.Fatal(err)
	}
	if _, again, err := apphost.ReadExport(&out, apphost.MaxBundle); err != nil || again != nil {
		t.Fatalf("export with have= the live package: %d bytes of package, %v", len(again), err)
	}

	// Imported as another app, on this host.
	r, err := w.host.Import(ctx, "acme", "moved", rec, bytes.NewReader(pkg), apphost.Share{}, nil)
	if err != nil || r.Number != 1 || r.Status != "live" {
		t.Fatalf("import: %+v %v", r, err)
	}
	if env, _ := w.host.Env("acme", "moved", true); !maps.Equal(env, rec.Env) {
		t.Fatalf("imported env %v, want %v", env, rec.Env)
	}
	ps, _ := w.host.Ps("acme", "moved")
	if len(ps) != 2 { // web.0 and web.1; a worker runs none unless scaled
		t.Fatalf("imported instances: %+v; want two web instances", ps)
	}
	if code, body := w.get("moved.acme.apps.test"); code != 200 || !strings.Contains(body, "release 1") {
		t.Fatalf("the imported app: %d %q", code, body)
	}
	if _, err := w.host.Import(ctx, "acme", "moved", rec, bytes.NewReader(pkg), apphost.Share{}, nil); !errors.Is(err, apphost.ErrExists) {
		t.Fatalf("an import of an app the host has: %v, want ErrExists", err)
	}
	if got := w.host.Running(); len(got) != 2 || got[1].App != "web" || got[1].Release != 2 || got[1].Scale["web"] != 2 {
		t.Fatalf("running: %+v", got)
	}

	// The environment is the recipe's from the first start: one that keeps it from getting
	// healthy fails the import and leaves no app.
	bad := rec
	bad.Env = map[string]string{"NEVER_HEALTHY": "1"}
	if _, err := w.host.Import(ctx, "acme", "sick", bad, bytes.NewReader(pkg), apphost.Share{}, nil); !errors.Is(err, apphost.ErrUnhealthy) {
		t.Fatalf("an import that never gets healthy: %v", err)
	}
	if _, err := w.host.Releases("acme", "sick"); !errors.Is(err, apphost.ErrNotFound) {
		t.Fatalf("a failed import left the app: %v", err)
	}
	bad.Env = map[string]string{"NOT A NAME": "x"}
	if _, err := w.host.Import(ctx, "acme", "sick", bad, bytes.NewReader(pkg), apphost.Share{}, nil); err == nil {
		t.Fatal("an import with a malformed variable name ran")
	}
	// A scale naming a type the Procfile lacks drops it; one over the policy is refused.
	odd := rec
	odd.Scale = map[string]int{"web": 1, "ghost": 3}
	if _, err := w.host.Import(ctx, "acme", "odd", odd, bytes.NewReader(pkg), apphost.Share{}, nil); err != nil {
		t.Fatalf("import with an unknown type in its scale: %v", err)
	}
	odd.Scale = map[string]int{"web": 1 << 20}
	if _, err := w.host.Import(ctx, "acme", "huge", odd, bytes.NewReader(pkg), apphost.Share{}, nil); err == nil {
		t.Fatal("an import over the policy's instances ran")
	}

	// A release made from a delta has no package kept: its files are packed anew.
	dir := sampleDir(t, `{"health":"/healthz","memory_mb":64}`)
	_, files, err := apphost.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]bool{}
	have, _ := w.host.HaveFiles("acme", "web", nil)
	for _, d := range have {
		idx[d] = true
	}
	delta, _, err := apphost.PackDelta(dir, 1, files, func(d string) bool { return idx[d] })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.host.DeployDelta(ctx, "acme", "web", bytes.NewReader(delta), nil); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := w.host.Export(&out, "acme", "web", ""); err != nil {
		t.Fatal(err)
	}
	rec3, pkg3, err := apphost.ReadExport(&out, apphost.MaxBundle)
	if err != nil || rec3.Release != 3 || len(pkg3) == 0 {
		t.Fatalf("export of a delta's release: %+v, %d bytes, %v", rec3, len(pkg3), err)
	}
	if _, err := w.host.Import(ctx, "acme", "fromdelta", rec3, bytes.NewReader(pkg3), apphost.Share{}, nil); err != nil {
		t.Fatalf("import of a delta's release: %v", err)
	}

	// A copy retired (it runs elsewhere now) is gone but for its HOME, kept aside.
	kept, err := w.host.Retire("acme", "moved")
	if err != nil || !strings.HasPrefix(kept, w.dir+"/retired/acme/moved-") {
		t.Fatalf("retire: %q %v", kept, err)
	}
	if st, err := os.Stat(kept); err != nil || !st.Mode().IsRegular() {
		t.Fatalf("the kept home %s: %v", kept, err)
	}
	if _, err := w.host.Releases("acme", "moved"); !errors.Is(err, apphost.ErrNotFound) {
		t.Fatalf("a retired app is still here: %v", err)
	}
	if code, _ := w.get("moved.acme.apps.test"); code != 404 {
		t.Fatalf("a retired app is still routed: %d", code)
	}
	// Retired again and again, it keeps its newest three HOMEs aside; images of apps whose
	// names start the same (and a tenant's whose name would read the same) are not its own.
	others := []string{w.dir + "/retired/acme/moved-x-1.img", w.dir + "/retired/acme/moved-01.img", w.dir + "/retired/acme-moved-2.img"}
	for _, f := range others {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var last []string
	for range 3 {
		if _, err := w.host.Import(ctx, "acme", "moved", rec, bytes.NewReader(pkg), apphost.Share{}, nil); err != nil {
			t.Fatal(err)
		}
		k, err := w.host.Retire("acme", "moved")
		if err != nil {
			t.Fatal(err)
		}
		last = append(last, k)
	}
	for _, f := range append(last, others...) {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s pruned: %v", f, err)
		}
	}
	if _, err := os.Stat(kept); !os.IsNotExist(err) {
		t.Fatalf("the oldest of four kept HOMEs, %s, is still there: %v", kept, err)
	}

	out.Reset()
	if err := w.host.Export(&out, "acme", "web", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := apphost.ReadExport(&out, 1<<20); !errors.Is(err, apphost.ErrTooLarge) {
		t.Fatalf("an export over the reader's bound: %v, want too large", err)
	}
	for _, junk := range [][]byte{nil, []byte("not a tar"), pkg} {
		if _, _, err := apphost.ReadExport(bytes.NewReader(junk), apphost.MaxBundle); err == nil {
			t.Fatalf("ReadExport took %d bytes of junk", len(junk))
		}
	}
	t.Logf("exported %d bytes of package with release %d; imported as release 1 with its env and 2 instances", len(pkg), rec.Release)
}
