package keys

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Operator is the root of the chain. Its identity key signs only the operator JWT, once, and
// may then be moved offline; its signing key signs every account JWT (strict signing-key use).
type Operator struct {
	Public  string // identity public key (O…)
	JWT     string
	Claims  *jwt.OperatorClaims
	dir     string
	signing nkeys.KeyPair
}

// SigningPublic is the public operator signing key.
func (o *Operator) SigningPublic() string {
	pub, _ := o.signing.PublicKey()
	return pub
}

// Derive returns a secret derived from the operator signing key for label: every ring 0
// member holding the key derives the same one (the cluster's route password, say), and
// nobody without the key can.
func (o *Operator) Derive(label string) string {
	seed, err := o.signing.Seed()
	if err != nil {
		panic("keys: operator signing key without a seed") // loaded from its seed file
	}
	m := hmac.New(sha256.New, seed)
	m.Write([]byte("enjin/" + label))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func initOperator(dir string) (*Operator, error) {
	if op, err := loadOperator(dir); err == nil {
		return op, nil
	} else if !errors.Is(err, ErrNoKey) {
		return nil, err
	}
	id, err := seedFile(filepath.Join(dir, "operator.seed"), nkeys.PrefixByteOperator)
	if err != nil {
		return nil, err
	}
	sk, err := seedFile(filepath.Join(dir, "operator-signing.seed"), nkeys.PrefixByteOperator)
	if err != nil {
		return nil, err
	}
	pub, _ := id.PublicKey()
	spub, _ := sk.PublicKey()
	oc := jwt.NewOperatorClaims(pub)
	oc.Name = "enjin"
	oc.SigningKeys.Add(spub)
	oc.StrictSigningKeyUsage = true
	op := &Operator{Public: pub, Claims: oc, dir: dir, signing: sk}
	if err := op.sign(id); err != nil {
		return nil, err
	}
	return op, nil
}

// setSystemAccount records the SYS account in the operator JWT; it needs the identity key,
// which Init still has at hand.
func (o *Operator) setSystemAccount(sysPub string) error {
	id, err := readSeed(filepath.Join(o.dir, "operator.seed"), nkeys.PrefixByteOperator)
	if err != nil {
		return fmt.Errorf("keys: operator identity key needed to set the system account: %w", err)
	}
	o.Claims.SystemAccount = sysPub
	return o.sign(id)
}

func (o *Operator) sign(id nkeys.KeyPair) error {
	tok, err := o.Claims.Encode(id)
	if err != nil {
		return fmt.Errorf("keys: sign operator: %w", err)
	}
	if err := WriteCreds(filepath.Join(o.dir, "operator.jwt"), []byte(tok)); err != nil {
		return err
	}
	o.JWT = tok
	return nil
}

func loadOperator(dir string) (*Operator, error) {
	b, err := os.ReadFile(filepath.Join(dir, "operator.jwt"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("keys: operator.jwt in %s: %w", dir, ErrNoKey)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	oc, err := jwt.DecodeOperatorClaims(string(trimSpace(b)))
	if err != nil {
		return nil, fmt.Errorf("keys: operator.jwt: %w", err)
	}
	sk, err := readSeed(filepath.Join(dir, "operator-signing.seed"), nkeys.PrefixByteOperator)
	if err != nil {
		return nil, err
	}
	spub, _ := sk.PublicKey()
	if !oc.SigningKeys.Contains(spub) {
		return nil, fmt.Errorf("keys: operator signing key %s is not in operator.jwt", spub)
	}
	return &Operator{Public: oc.Subject, JWT: string(trimSpace(b)), Claims: oc, dir: dir, signing: sk}, nil
}
