package issuer_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"enjin/services/issuer"
)

// TestRenewDue renews once less than a third of a certificate's lifetime is left, and at
// once for one that makes no sense (no lifetime).
func TestRenewDue(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(90 * 24 * time.Hour) // renewal from day 60
	for _, tc := range []struct {
		name string
		now  time.Time
		want bool
	}{
		{"just issued", nb, false},
		{"day 59", nb.Add(59 * 24 * time.Hour), false},
		{"a second before day 60", nb.Add(60*24*time.Hour - time.Second), false},
		{"day 60", nb.Add(60 * 24 * time.Hour), true},
		{"day 89", nb.Add(89 * 24 * time.Hour), true},
		{"expired", na.Add(time.Hour), true},
	} {
		if got := issuer.RenewDue(nb, na, tc.now); got != tc.want {
			t.Errorf("%s: RenewDue = %t, want %t", tc.name, got, tc.want)
		}
	}
	if !issuer.RenewDue(na, nb, nb) || !issuer.RenewDue(nb, nb, nb.Add(-time.Hour)) {
		t.Error("a certificate with no lifetime is not due")
	}
}

// TestNew refuses what cannot work: a directory that is not https, no account key, a CA file
// with no certificate.
func TestNew(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	junk := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(junk, []byte("not pem"), 0o644)
	for _, cfg := range []issuer.Config{
		{Directory: "http://127.0.0.1:14000/dir", AccountKey: key},
		{Directory: "https://127.0.0.1:14000/dir"},
		{Directory: "https://127.0.0.1:14000/dir", AccountKey: key, CAFile: junk},
		{Directory: "https://127.0.0.1:14000/dir", AccountKey: key, CAFile: junk + ".none"},
	} {
		if _, err := issuer.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := issuer.New(issuer.Config{Directory: "https://127.0.0.1:14000/dir", AccountKey: key}); err != nil {
		t.Errorf("New: %v", err)
	}
}
