package keys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// acmeAccountFile is the ACME account key ring 0 signs its requests to an ACME server with.
const acmeAccountFile = "acme-account.key"

// ACMEAccountFile is where stateDir keeps the ACME account key.
func ACMEAccountFile(stateDir string) string {
	return filepath.Join(stateDir, "keys", acmeAccountFile)
}

// ACMEAccountKey returns stateDir's ACME account key (ECDSA P-256), made and written 0600 the
// first time: the account is one key for good, so renewals come from the same account.
func ACMEAccountKey(stateDir string) (*ecdsa.PrivateKey, error) {
	path := ACMEAccountFile(stateDir)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("keys: acme account: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("keys: acme account: %w", err)
		}
		if err := writeSecret(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return nil, err
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys: acme account: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("keys: acme account %s: no PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("keys: acme account %s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("keys: acme account %s: %T is no ECDSA key", path, k)
	}
	return ek, nil
}
