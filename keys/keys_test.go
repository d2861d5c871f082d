package keys_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"enjin/keys"
)

func TestInitIsIdempotentAndSecretsAre0600(t *testing.T) {
	dir := t.TempDir()
	c1, err := keys.Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, filepath.Join(dir, "keys"))
	c2, err := keys.Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, filepath.Join(dir, "keys"))
	if c1.Operator.Public != c2.Operator.Public {
		t.Fatalf("operator changed: %s → %s", c1.Operator.Public, c2.Operator.Public)
	}
	for path, b := range before {
		if strings.HasSuffix(path, ".seed") && after[path] != b {
			t.Errorf("%s changed on second init", path)
		}
	}
	if len(after) != len(before) {
		t.Errorf("second init: %d files, first: %d", len(after), len(before))
	}
	seeds := 0
	filepath.WalkDir(filepath.Join(dir, "keys"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, _ := d.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
		}
		if strings.HasSuffix(p, ".seed") {
			seeds++
		}
		return nil
	})
	// operator identity + signing, and two keys for each of the four ring accounts
	if seeds != 2+2*len(keys.FixedAccounts) {
		t.Errorf("%d seeds, want %d", seeds, 2+2*len(keys.FixedAccounts))
	}
	if !c1.Operator.Claims.StrictSigningKeyUsage {
		t.Error("operator does not require signing keys")
	}
	sys, _ := c1.Account(keys.SYS)
	if c1.Operator.Claims.SystemAccount != sys.Public {
		t.Errorf("system account %s, want %s", c1.Operator.Claims.SystemAccount, sys.Public)
	}
	l, err := keys.Load(dir)
	if err != nil || l.Operator.Public != c1.Operator.Public {
		t.Fatalf("load: %v", err)
	}
}

func snapshot(t *testing.T, dir string) map[string]string {
	m := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			m[p] = string(b)
		}
		return err
	})
	return m
}

func TestAccountJWTsAreSignedByOperatorSigningKeyAndRefuseBearer(t *testing.T) {
	c, err := keys.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.Account(keys.RING1)
	tok, err := c.SignAccount(a, a.NewClaims())
	if err != nil {
		t.Fatal(err)
	}
	ac, err := jwt.DecodeAccountClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	if ac.Issuer != c.Operator.SigningPublic() || ac.Issuer == c.Operator.Public {
		t.Fatalf("issuer %s: want the operator signing key %s", ac.Issuer, c.Operator.SigningPublic())
	}
	if !ac.Limits.DisallowBearer {
		t.Fatal("account allows bearer tokens")
	}
	other, _ := c.Account(keys.OPS)
	if _, err := c.SignAccount(other, a.NewClaims()); err == nil {
		t.Fatal("signed RING1's claims as OPS's JWT")
	}
}

func TestAccountNamesAreChecked(t *testing.T) {
	c, err := keys.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"T-*", "T->", "T-a.b", "../x", "FOO", "T-", "T-A"} {
		if _, _, err := c.EnsureAccount(n); err == nil {
			t.Errorf("EnsureAccount(%q) accepted", n)
		}
	}
	if _, created, err := c.EnsureAccount("T-acme"); err != nil || !created {
		t.Fatalf("T-acme: created %v err %v", created, err)
	}
	if _, created, _ := c.EnsureAccount("T-acme"); created {
		t.Fatal("T-acme created twice")
	}
}

func TestAttestationKeyRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "attest.seed")
	a, err := keys.EnsureAttestation(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.EnsureAttestation(p)
	if err != nil || b.Public() != a.Public() {
		t.Fatalf("reload: %v, %s vs %s", err, b.Public(), a.Public())
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	if err := a.WriteFile(p); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("overwrote an existing key: %v", err)
	}
	if _, err := keys.ParseAttestationPublic(a.Public()); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.ParseAttestationPublic("U" + a.Public()[1:] + "x"); err == nil {
		t.Fatal("parsed a malformed key")
	}
}

func TestAttestationSeedText(t *testing.T) {
	a, err := keys.NewAttestation()
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.ParseAttestation([]byte(a.SeedText() + "\n"))
	if err != nil || b.Public() != a.Public() {
		t.Fatalf("round trip: %v, got %s want %s", err, b.Public(), a.Public())
	}
	text := a.SeedText()
	for _, bad := range []string{"", "enjin-attest-v1:", text[:len(text)-1], text + "A", "x" + text,
		strings.Replace(text, ":", ":=", 1), text[:len(text)-1] + "!"} {
		if _, err := keys.ParseAttestation([]byte(bad)); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
}

func TestLoadCredsRefusesReadableFiles(t *testing.T) {
	c, err := keys.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.Account(keys.OPS)
	cr, err := a.Issuer(keys.Grant{SubAllow: []string{"ops.>"}, PubDeny: []string{">"}}).
		Mint(keys.UserRequest{Name: "op", Perms: keys.Permissions{SubAllow: []string{"ops.>"}, PubDeny: []string{">"}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := cr.File()
	p := filepath.Join(t.TempDir(), "op.creds")
	if err := keys.WriteCreds(p, b); err != nil {
		t.Fatal(err)
	}
	got, err := keys.LoadCreds(p)
	if err != nil || got.PublicKey != cr.PublicKey {
		t.Fatalf("load: %v", err)
	}
	os.Chmod(p, 0o644)
	if _, err := keys.LoadCreds(p); err == nil {
		t.Fatal("loaded a world-readable creds file")
	}
	// a seed that does not match the JWT
	other, _ := nkeys.CreateUser()
	seed, _ := other.Seed()
	mixed, _ := jwt.FormatUserConfig(cr.JWT, seed)
	if _, err := keys.ParseCreds(mixed); err == nil {
		t.Fatal("accepted creds whose seed is for another key")
	}
}

// A copied chain is the same chain, secrets still 0600, and copying over a chain is refused.
func TestCopyChain(t *testing.T) {
	from, to := t.TempDir(), t.TempDir()
	a, err := keys.Init(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.CopyChain(from, to); err != nil {
		t.Fatal(err)
	}
	b, err := keys.Load(to)
	if err != nil {
		t.Fatal(err)
	}
	if a.Operator.Public != b.Operator.Public || a.Operator.Derive("x") != b.Operator.Derive("x") {
		t.Fatal("the copy is another chain")
	}
	info, err := os.Stat(filepath.Join(to, "keys", "operator-signing.seed"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("copied seed: %v %v; want mode 0600", info.Mode(), err)
	}
	if err := keys.CopyChain(from, to); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("copy over a chain: %v; want refused", err)
	}
	if err := keys.CopyChain(t.TempDir(), t.TempDir()); err == nil {
		t.Fatal("copied a chain that is not there")
	}
}

// TestACMEAccountKey makes the ACME account key once, 0600, and reads the same key after.
func TestACMEAccountKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := keys.ACMEAccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keys.ACMEAccountFile(dir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("account key file: %v %v; want mode 0600", fi, err)
	}
	k2, err := keys.ACMEAccountKey(dir)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("second read: %v; want the same key", err)
	}
	os.WriteFile(keys.ACMEAccountFile(dir), []byte("junk"), 0o600)
	if _, err := keys.ACMEAccountKey(dir); err == nil {
		t.Fatal("a junk account key file was accepted")
	}
}
