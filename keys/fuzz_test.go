package keys_test

import (
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"

	"enjin/keys"
)

// FuzzLoadCreds feeds arbitrary bytes through the creds parsing and checking path: nothing may
// panic, and whatever parses must be internally consistent.
func FuzzLoadCreds(f *testing.F) {
	c, err := keys.Init(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	a, _ := c.Account(keys.RING1)
	tok, _ := c.SignAccount(a, a.NewClaims())
	ac, _ := jwt.DecodeAccountClaims(tok)
	cr, err := a.Issuer(nodeGrant).Mint(keys.UserRequest{Name: "n1", Perms: nodePerms("n1")}, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	good, _ := cr.File()
	f.Add(good)
	f.Add([]byte(cr.JWT))
	f.Add([]byte("-----BEGIN NATS USER JWT-----\n\n------END NATS USER JWT------\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := keys.ParseCreds(b)
		if err != nil {
			return
		}
		kp, err := got.KeyPair()
		if err != nil {
			t.Fatalf("parsed creds without a usable seed: %v", err)
		}
		if pub, _ := kp.PublicKey(); pub != got.PublicKey {
			t.Fatalf("seed %s does not match jwt %s", pub, got.PublicKey)
		}
		_, _ = keys.Check(got.JWT, ac, time.Now())
	})
}

// FuzzCheck feeds arbitrary strings to the JWT checker.
func FuzzCheck(f *testing.F) {
	c, _ := keys.Init(f.TempDir())
	a, _ := c.Account(keys.RING1)
	tok, _ := c.SignAccount(a, a.NewClaims())
	ac, _ := jwt.DecodeAccountClaims(tok)
	cr, _ := a.Issuer(nodeGrant).Mint(keys.UserRequest{Name: "n1", Perms: nodePerms("n1")}, time.Now())
	f.Add(cr.JWT)
	f.Add("eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.x")
	f.Fuzz(func(t *testing.T, s string) {
		uc, err := keys.Check(s, ac, time.Now())
		if err == nil && uc.Issuer != a.SigningPublic() && uc.Issuer != a.Public {
			t.Fatalf("accepted a JWT issued by %s", uc.Issuer)
		}
	})
}

// FuzzParseAttestation feeds arbitrary bytes to the attestation key parser: nothing may panic,
// and a key it accepts must write back as the text it was read from.
func FuzzParseAttestation(f *testing.F) {
	a, _ := keys.NewAttestation()
	f.Add([]byte(a.SeedText()))
	f.Add([]byte("enjin-attest-v1:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := keys.ParseAttestation(b)
		if err != nil {
			return
		}
		if again, err := keys.ParseAttestation([]byte(got.SeedText())); err != nil || again.Public() != got.Public() {
			t.Fatalf("%q: seed text does not round-trip: %v", b, err)
		}
	})
}
