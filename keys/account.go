package keys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Account is one NATS account of the chain: its identity key, the signing key its users are
// issued with, and its current JWT (which holds exports, imports, limits and revocations).
type Account struct {
	Name    string
	Public  string // account public key (A…)
	dir     string
	signing nkeys.KeyPair
}

// SigningPublic is the public key of the account's (unscoped) signing key.
func (a *Account) SigningPublic() string {
	pub, _ := a.signing.PublicKey()
	return pub
}

// Issuer returns an issuer that mints users of this account within grant.
func (a *Account) Issuer(grant Grant) *Issuer {
	return &Issuer{account: a.Public, name: a.Name, kp: a.signing, grant: grant.normalized()}
}

// NewClaims returns fresh claims for the account: its signing key registered, bearer tokens
// disallowed. Callers add exports, imports, scopes and limits and sign with Chain.SignAccount.
func (a *Account) NewClaims() *jwt.AccountClaims {
	ac := jwt.NewAccountClaims(a.Public)
	ac.Name = a.Name
	ac.SigningKeys.Add(a.SigningPublic())
	ac.Limits.DisallowBearer = true
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{} // no JetStream: acknowledgements come from the store
	return ac
}

// JWT is the account's current signed JWT, or "" if it has never been signed.
func (a *Account) JWT() (string, error) {
	b, err := os.ReadFile(filepath.Join(a.dir, "account.jwt"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("keys: account %s: %w", a.Name, err)
	}
	return string(trimSpace(b)), nil
}

// Claims decodes the account's current JWT; it returns nil claims if there is none yet.
func (a *Account) Claims() (*jwt.AccountClaims, error) {
	tok, err := a.JWT()
	if err != nil || tok == "" {
		return nil, err
	}
	ac, err := jwt.DecodeAccountClaims(tok)
	if err != nil {
		return nil, fmt.Errorf("keys: account %s: %w", a.Name, err)
	}
	return ac, nil
}

// SigningKeyPair returns the account's (unscoped) signing key, which ring 0 uses for the
// activation tokens of the account's exports; claims it signs must set IssuerAccount to the
// account's public key. Only ring 0 ever holds it.
func (a *Account) SigningKeyPair() nkeys.KeyPair { return a.signing }

func (a *Account) storeJWT(tok string) error {
	return WriteCreds(filepath.Join(a.dir, "account.jwt"), []byte(tok+"\n"))
}

func loadAccount(dir, name string) (*Account, error) {
	id, err := readSeed(filepath.Join(dir, "account.seed"), nkeys.PrefixByteAccount)
	if err != nil {
		return nil, err
	}
	sk, err := readSeed(filepath.Join(dir, "signing.seed"), nkeys.PrefixByteAccount)
	if err != nil {
		return nil, err
	}
	pub, _ := id.PublicKey()
	return &Account{Name: name, Public: pub, dir: dir, signing: sk}, nil
}

func createAccount(dir, name string) (*Account, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if _, err := seedFile(filepath.Join(dir, "account.seed"), nkeys.PrefixByteAccount); err != nil {
		return nil, err
	}
	if _, err := seedFile(filepath.Join(dir, "signing.seed"), nkeys.PrefixByteAccount); err != nil {
		return nil, err
	}
	return loadAccount(dir, name)
}
