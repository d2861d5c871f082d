package keys

import (
	"fmt"
	"os"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// maxCredsFile bounds what ParseCreds reads; a real .creds file is under 4 KiB.
const maxCredsFile = 64 << 10

// ParseCreds reads a .creds file: a user JWT and the seed of the key it names. It checks the
// two belong together; the JWT's signature is checked by decoding, its rights by Check.
func ParseCreds(b []byte) (*Creds, error) {
	if len(b) > maxCredsFile {
		return nil, fmt.Errorf("keys: creds: %d bytes is too large", len(b))
	}
	tok, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		return nil, fmt.Errorf("keys: creds: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return nil, fmt.Errorf("keys: creds: %w", err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(b)
	if err != nil {
		return nil, fmt.Errorf("keys: creds: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("keys: creds: %w", err)
	}
	if pub != uc.Subject {
		return nil, fmt.Errorf("keys: creds: seed is for %s, jwt for %s", pub, uc.Subject)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("keys: creds: %w", err)
	}
	return &Creds{Name: uc.Name, PublicKey: pub, JWT: tok, Seed: seed, Expires: unixOrZero(uc.Expires)}, nil
}

// LoadCreds reads and parses a .creds file, refusing one that others can read.
func LoadCreds(path string) (*Creds, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keys: %s: mode %v lets others read a secret; want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	c, err := ParseCreds(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return c, nil
}

// KeyPair returns the user key pair of c; it needs the seed.
func (c *Creds) KeyPair() (nkeys.KeyPair, error) {
	if c.Seed == nil {
		return nil, fmt.Errorf("keys: creds for %s: no seed", c.Name)
	}
	kp, err := nkeys.FromSeed(c.Seed)
	if err != nil {
		return nil, fmt.Errorf("keys: creds for %s: %w", c.Name, err)
	}
	return kp, nil
}
