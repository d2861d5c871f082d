package apphost_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"enjin/services/apphost"
)

// A directory deployed again unchanged is deployed by its package's digest, with no bytes:
// the digest a client computes (TreeDigest) is the one the host names the upload by, the
// new release runs and serves, and only the app's own releases count — another app of the
// tenant, an unknown digest and a malformed one are refused.
func TestDeployPackageAgain(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	dir := t.TempDir()
	b, _ := os.ReadFile(sampleBin)
	os.WriteFile(filepath.Join(dir, "sampleapp"), b, 0o755)
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: ./sampleapp\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "enjin.json"), []byte(`{"health":"/healthz"}`), 0o644)
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
