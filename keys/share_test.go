package keys_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"enjin/keys"
)

// A tenant account made on one ring 0 member is adopted by another holding the same chain:
// the same identity and signing key, the same JWT, seeds 0600. The sealed form holds no seed
// in the clear, opens with no other operator's key, not after a flipped byte, and not under
// another account's name. A stray account of the same name is set aside; a retired one is
// retired.
func TestShareAndAdopt(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	a, err := keys.Init(dirA)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.CopyChain(dirA, dirB); err != nil {
		t.Fatal(err)
	}
	b, err := keys.Load(dirB)
	if err != nil {
		t.Fatal(err)
	}
	acme, _, err := a.EnsureAccount("T-acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SignAccount(acme, acme.NewClaims()); err != nil {
		t.Fatal(err)
	}
	// b made one of its own before it knew of a's.
	stray, _, err := b.EnsureAccount("T-acme")
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.Share("T-acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"account.seed", "signing.seed"} {
		seed, err := os.ReadFile(filepath.Join(dirA, "keys", "accounts", "T-acme", f))
		if err != nil || bytes.Contains(s.Sealed, bytes.TrimSpace(seed)) {
			t.Fatalf("%s: %v, or it shows in the clear in the sealed seeds", f, err)
		}
	}

	other, err := keys.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	flipped := s
	flipped.Sealed = bytes.Clone(s.Sealed)
	flipped.Sealed[len(flipped.Sealed)/2] ^= 1
	renamed := s
	renamed.Name = "T-globex"
	for what, try := range map[string]func() error{
		"another operator's chain": func() error { return other.Adopt(s) },
		"a flipped byte":           func() error { return b.Adopt(flipped) },
		"another account's name":   func() error { return b.Adopt(renamed) },
	} {
		if err := try(); err == nil {
			t.Fatalf("adopted with %s", what)
		}
	}

	if err := b.Adopt(s); err != nil {
		t.Fatal(err)
	}
	got, err := b.Account("T-acme")
	if err != nil {
		t.Fatal(err)
	}
	wantJWT, _ := acme.JWT()
	gotJWT, _ := got.JWT()
	if got.Public != acme.Public || got.SigningPublic() != acme.SigningPublic() || gotJWT != wantJWT || got.Public == stray.Public {
		t.Fatalf("adopted %s (signing %s), want a's %s (signing %s) and its JWT", got.Public, got.SigningPublic(), acme.Public, acme.SigningPublic())
	}
	for _, f := range []string{"account.seed", "signing.seed"} {
		if info, err := os.Stat(filepath.Join(dirB, "keys", "accounts", "T-acme", f)); err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v; want 0600", f, info, err)
		}
	}
	if set, _ := filepath.Glob(filepath.Join(dirB, "keys", "accounts", ".retired-T-acme-*")); len(set) != 1 {
		t.Fatalf("the stray account was not set aside: %v", set)
	}
	if err := b.Adopt(s); err != nil { // again: nothing changes
		t.Fatal(err)
	}

	s.Retired = true
	if err := b.Adopt(s); err != nil {
		t.Fatal(err)
	}
	if names, _ := b.Accounts(); len(names) != len(keys.FixedAccounts) {
		t.Fatalf("after retirement b lists %v", names)
	}
}
