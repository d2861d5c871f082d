package apphost_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"enjin/services/apphost"
)

// sampleDir is a directory holding the sample app, a Procfile running it and enjinJSON.
func sampleDir(t *testing.T, enjinJSON string) string {
	dir := t.TempDir()
	b, _ := os.ReadFile(sampleBin)
	os.WriteFile(filepath.Join(dir, "sampleapp"), b, 0o755)
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: ./sampleapp\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "enjin.json"), []byte(enjinJSON), 0o644)
	return dir
}

// A directory deployed again unchanged is deployed by its package's digest, with no bytes:
// the digest a client computes (TreeDigest) is the one the host names the upload by, the
// new release runs and serves, and only the app's own releases count — another app of the
// tenant, an unknown digest and a malformed one are refused.
func TestDeployPackageAgain(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	dir := sampleDir(t, `{"health":"/healthz"}`)
	packed, err := apphost.Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := apphost.TreeDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := apphost.Digest(packed); err != nil || d != digest {
		t.Fatalf("the bundle's digest %s (%v), the tree's %s", d, err, digest)
	}
	if _, err := w.host.DeployPackage(ctx, "acme", "again", digest, nil); !errors.Is(err, apphost.ErrNotFound) {
		t.Fatalf("a package before any deploy: %v, want not found", err)
	}
	r1, err := w.deploy(ctx, "acme", "again", packed)
	if err != nil || r1.Digest != digest {
		t.Fatalf("deploy: %+v %v; want the package named %s", r1, err, digest)
	}
	r2, err := w.host.DeployPackage(ctx, "acme", "again", digest, nil)
	if err != nil || r2.Number != 2 || r2.Digest != digest {
		t.Fatalf("deploy of the package again: %+v %v", r2, err)
	}
	if code, body := w.get("again.acme.apps.test"); code != 200 || !strings.Contains(body, "release 2") {
		t.Fatalf("after: %d %q", code, body)
	}
	// The host has the package; an app that never had it may not name it.
	if _, err := w.deploy(ctx, "acme", "other", bundle(t, "web: ./sampleapp\n", `{"health":"/healthz","env":{"X":"1"}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.host.DeployPackage(ctx, "acme", "other", digest, nil); !errors.Is(err, apphost.ErrNotFound) {
		t.Fatalf("another app of the tenant, naming the package: %v, want not found", err)
	}
	if _, err := w.host.DeployPackage(ctx, "beta", "again", digest, nil); !errors.Is(err, apphost.ErrNotFound) {
		t.Fatalf("another tenant's app of that name: %v, want not found", err)
	}
	if _, err := w.host.DeployPackage(ctx, "acme", "again", "sha256-"+strings.Repeat("0", 64), nil); !errors.Is(err, apphost.ErrNotFound) {
		t.Fatalf("a package the app never had: %v, want not found", err)
	}
	var fe *apphost.FieldError
	for _, bad := range []string{"sha256-../../etc", "sha256-" + strings.Repeat("A", 64), "md5-00", ""} {
		if _, err := w.host.DeployPackage(ctx, "acme", "again", bad, nil); !errors.As(err, &fe) {
			t.Errorf("digest %q: %v, want a field error", bad, err)
		}
	}
	// Not a gzipped tar at all: refused as the bundle it is not, and nothing stored.
	if _, err := w.deploy(ctx, "acme", "again", []byte("not gzip")); !errors.As(err, &fe) {
		t.Fatalf("a body that is no gzip: %v", err)
	}
}

// A directory with one file changed sends that file only: the node says which of the
// files' digests the app's releases have, the delta bundle carries the changed file whole
// and the rest as references, and the release made of it serves, named by the whole tree's
// digest — so deploying that directory again is found by digest. References the app cannot
// back (a digest it never had, another app's file, a wrong size) are refused.
func TestDeployDelta(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	dir := sampleDir(t, `{"health":"/healthz","env":{"V":"1"}}`)
	os.WriteFile(filepath.Join(dir, "data.txt"), []byte("acme's delta app's own data\n"), 0o644)
	full, err := apphost.Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.deploy(ctx, "acme", "delta", full); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "enjin.json"), []byte(`{"health":"/healthz","env":{"V":"2"}}`), 0o644)
	digest, files, err := apphost.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if td, _ := apphost.TreeDigest(dir); td != digest || len(files) != 4 {
		t.Fatalf("scan: %s %d files; tree digest %s", digest, len(files), td)
	}
	var digests []string
	for _, f := range files {
		digests = append(digests, f.Digest)
	}
	have, err := w.host.HaveFiles("acme", "delta", digests)
	if err != nil || len(have) != 3 {
		t.Fatalf("the node has %v (%v), want the 3 unchanged files", have, err)
	}
	has := func(d string) bool { return slices.Contains(have, d) }
	delta, whole, err := apphost.PackDelta(dir, gzip.BestSpeed, files, has)
	if err != nil || whole != 1 || len(delta) > 4096 {
		t.Fatalf("delta bundle: %d bytes, %d files whole (%v); want 1, and the binary left out", len(delta), whole, err)
	}
	r, err := w.host.DeployDelta(ctx, "acme", "delta", bytes.NewReader(delta), nil)
	if err != nil || r.Number != 2 || r.Digest != digest {
		t.Fatalf("delta deploy: %+v %v; want release 2 named %s", r, err, digest)
	}
	if code, body := w.get("delta.acme.apps.test"); code != 200 || !strings.Contains(body, "release 2") {
		t.Fatalf("after the delta deploy: %d %q", code, body)
	}
	if r3, err := w.host.DeployPackage(ctx, "acme", "delta", digest, nil); err != nil || r3.Digest != digest {
		t.Fatalf("the delta's tree, deployed again by digest: %+v %v", r3, err)
	}
	t.Logf("one file of %d changed: %d-byte delta bundle (the whole: %d bytes)", len(files), len(delta), len(full))

	// What a delta may not reference.
	if _, err := w.deploy(ctx, "acme", "other", bundle(t, "web: ./sampleapp\n", `{"health":"/healthz","env":{"O":"1"}}`)); err != nil {
		t.Fatal(err)
	}
	var fe *apphost.FieldError
	data := files[slices.IndexFunc(files, func(e apphost.Entry) bool { return e.Path == "data.txt" })].Digest
	for name, refs := range map[string]func(string) bool{
		"another app's file":  func(d string) bool { return d == data }, // other has the binary too, not this
		"a digest never seen": func(string) bool { return true },
	} {
		os.WriteFile(filepath.Join(dir, "enjin.json"), []byte(`{"health":"/healthz","env":{"V":"3"}}`), 0o644)
		_, files, _ := apphost.Scan(dir)
		if name == "a digest never seen" {
			files[0].Digest = "sha256-" + strings.Repeat("e", 64)
		}
		d, _, _ := apphost.PackDelta(dir, gzip.BestSpeed, files, refs)
		app := "other"
		if name == "a digest never seen" {
			app = "delta"
		}
		if _, err := w.host.DeployDelta(ctx, "acme", app, bytes.NewReader(d), nil); !errors.As(err, &fe) {
			t.Errorf("a delta referencing %s: %v, want it refused", name, err)
		}
	}
	if _, err := w.host.DeployDelta(ctx, "acme", "nobody", bytes.NewReader(delta), nil); !errors.Is(err, apphost.ErrNotFound) {
		t.Errorf("a delta for an app with no release: %v", err)
	}
}
