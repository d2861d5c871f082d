package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/nats-io/nkeys"
)

// Attestation is a node's observation-signing key. It is an ed25519 key distinct from the
// node's NATS auth key: the server can make a client sign arbitrary nonces with the auth key,
// so that key must never vouch for observations. The private key is decoded once and kept,
// since re-deriving it from the seed for every signature doubles the cost.
type Attestation struct {
	priv ed25519.PrivateKey
	pub  string
}

const attestPrefix = "enjin-attest-v1:"

// NewAttestation makes a fresh attestation key.
func NewAttestation() (*Attestation, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("keys: attestation key: %w", err)
	}
	return attestationFromSeed(seed), nil
}

func attestationFromSeed(seed []byte) *Attestation {
	priv := ed25519.NewKeyFromSeed(seed)
	return &Attestation{priv: priv, pub: EncodeAttestationPublic(priv.Public().(ed25519.PublicKey))}
}

// Public is the encoded public key, as carried in the Obs-Signer header and stored in the
// inventory: unpadded base64url of the 32-byte ed25519 key.
func (a *Attestation) Public() string { return a.pub }

// PrivateKey is the decoded signing key.
func (a *Attestation) PrivateKey() ed25519.PrivateKey { return a.priv }

// Sign signs msg.
func (a *Attestation) Sign(msg []byte) []byte { return ed25519.Sign(a.priv, msg) }

// EncodeAttestationPublic encodes an ed25519 public key the way Public does.
func EncodeAttestationPublic(pub ed25519.PublicKey) string {
	return base64.RawURLEncoding.EncodeToString(pub)
}

// ParseAttestationPublic decodes a public key produced by Public.
func ParseAttestationPublic(s string) (ed25519.PublicKey, error) {
	if len(s) != base64.RawURLEncoding.EncodedLen(ed25519.PublicKeySize) {
		return nil, fmt.Errorf("keys: attestation public key: length %d", len(s))
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("keys: attestation public key: %w", err)
	}
	return ed25519.PublicKey(b), nil
}

// SeedText is the key's secret seed as WriteFile stores it and ParseAttestation reads it:
// "enjin-attest-v1:" and the unpadded base64url seed. It is how a VM's key travels in its
// metadata; treat it as the key itself.
func (a *Attestation) SeedText() string {
	return attestPrefix + base64.RawURLEncoding.EncodeToString(a.priv.Seed())
}

// WriteFile stores the key's seed at path with mode 0600; it never replaces an existing key.
func (a *Attestation) WriteFile(path string) error {
	return writeSecret(path, []byte(a.SeedText()+"\n"))
}

// LoadAttestation reads a key written by WriteFile.
func LoadAttestation(path string) (*Attestation, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keys: %s: %w", path, ErrNoKey)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	a, err := ParseAttestation(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return a, nil
}

// ParseAttestation reads a key in the form SeedText makes; trailing white space is ignored.
func ParseAttestation(b []byte) (*Attestation, error) {
	rest, ok := bytes.CutPrefix(trimSpace(b), []byte(attestPrefix))
	if !ok {
		return nil, errors.New("keys: not an attestation key")
	}
	seed, err := base64.RawURLEncoding.Strict().DecodeString(string(rest))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("keys: malformed attestation key")
	}
	return attestationFromSeed(seed), nil
}

// EnsureAttestation loads the key at path, or makes and stores one if there is none.
func EnsureAttestation(path string) (*Attestation, error) {
	a, err := LoadAttestation(path)
	if err == nil || !errors.Is(err, ErrNoKey) {
		return a, err
	}
	if a, err = NewAttestation(); err != nil {
		return nil, err
	}
	return a, a.WriteFile(path)
}

func unixOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

// EnsureUserKey loads the NATS user key seed at path, or makes and stores one (0600). A node
// keeps its user key across credential renewals; only the JWT is re-issued.
func EnsureUserKey(path string) (nkeys.KeyPair, error) {
	return seedFile(path, nkeys.PrefixByteUser)
}

// EnsureScopedKey loads the scoped signing key seed at path, or makes and stores one (0600).
func EnsureScopedKey(path string) (nkeys.KeyPair, error) {
	return seedFile(path, nkeys.PrefixByteAccount)
}
