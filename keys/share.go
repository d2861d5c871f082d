package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nkeys"
)

// SharedAccount is one account as ring 0 members share it through the store: its identity,
// its two seeds sealed, and its current JWT. Sealing is AES-256-GCM under a key derived from
// the operator signing key, bound to the account's name and public key, so the store alone
// never yields a key and a sealed pair cannot be passed off as another account's.
type SharedAccount struct {
	Name    string
	Public  string
	Sealed  []byte
	JWT     string
	Retired bool // the tenant was deleted: every member retires the account
}

// Share returns the named account ready for the store.
func (c *Chain) Share(name string) (SharedAccount, error) {
	a, err := c.Account(name)
	if err != nil {
		return SharedAccount{}, err
	}
	var plain []byte
	for _, f := range []string{"account.seed", "signing.seed"} {
		b, err := os.ReadFile(filepath.Join(a.dir, f))
		if err != nil {
			return SharedAccount{}, fmt.Errorf("keys: share %s: %w", name, err)
		}
		plain = append(append(plain, trimSpace(b)...), '\n')
	}
	tok, err := a.JWT()
	if err != nil {
		return SharedAccount{}, err
	}
	sealed, err := c.Seal(name+"\n"+a.Public, plain)
	if err != nil {
		return SharedAccount{}, fmt.Errorf("keys: share %s: %w", name, err)
	}
	return SharedAccount{Name: name, Public: a.Public, Sealed: sealed, JWT: tok}, nil
}

// Adopt makes the chain hold s as the store has it: a retired account is retired here too; a
// live one's seeds are written if the chain lacks them, and its JWT replaces the chain's. An
// account of the same name with another key — made here while the store did not know it — is
// set aside (as RetireAccount does), since the store's is the one every member signs from.
func (c *Chain) Adopt(s SharedAccount) error {
	local, err := c.Account(s.Name)
	if err != nil && !errors.Is(err, ErrNoKey) {
		return err
	}
	if s.Retired {
		if local != nil && local.Public == s.Public {
			return c.RetireAccount(s.Name, time.Now())
		}
		return nil
	}
	if local != nil && local.Public == s.Public {
		if cur, err := local.JWT(); err != nil || cur == s.JWT || s.JWT == "" {
			return err
		}
		return local.storeJWT(s.JWT)
	}
	id, signing, err := c.open(s)
	if err != nil {
		return err
	}
	if local != nil {
		if err := c.RetireAccount(s.Name, time.Now()); err != nil {
			return err
		}
	}
	dir := filepath.Join(c.dir, "accounts", s.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keys: adopt %s: %w", s.Name, err)
	}
	for f, seed := range map[string][]byte{"account.seed": id, "signing.seed": signing} {
		if err := writeSecret(filepath.Join(dir, f), append(seed, '\n')); err != nil {
			return fmt.Errorf("keys: adopt %s: %w", s.Name, err)
		}
	}
	a, err := loadAccount(dir, s.Name)
	if err != nil {
		return err
	}
	if s.JWT != "" {
		if err := a.storeJWT(s.JWT); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.accounts[s.Name] = a
	c.mu.Unlock()
	return nil
}

// open unseals s's seeds and checks the identity seed is s's public key.
func (c *Chain) open(s SharedAccount) (id, signing []byte, err error) {
	if err := validAccountName(s.Name); err != nil {
		return nil, nil, err
	}
	plain, err := c.Unseal(s.Name+"\n"+s.Public, s.Sealed)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: adopt %s: the seeds do not open with this chain's key: %w", s.Name, err)
	}
	parts := bytes.Split(plain, []byte("\n"))
	if len(parts) != 3 {
		return nil, nil, fmt.Errorf("keys: adopt %s: sealed seeds malformed", s.Name)
	}
	kp, err := nkeys.FromSeed(parts[0])
	if err != nil {
		return nil, nil, fmt.Errorf("keys: adopt %s: %w", s.Name, err)
	}
	if pub, _ := kp.PublicKey(); pub != s.Public {
		return nil, nil, fmt.Errorf("keys: adopt %s: the sealed seed is of %s, not %s", s.Name, pub, s.Public)
	}
	if _, err := nkeys.FromSeed(parts[1]); err != nil {
		return nil, nil, fmt.Errorf("keys: adopt %s: signing seed: %w", s.Name, err)
	}
	return parts[0], parts[1], nil
}

// Seal encrypts a secret ring 0 members share through the store (AES-256-GCM under a key
// derived from the operator signing key), bound to label: it opens only with the same chain
// and the same label, so a sealed value cannot be passed off as another's.
func (c *Chain) Seal(label string, plain []byte) ([]byte, error) {
	gcm, err := c.sealer()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keys: seal: %w", err)
	}
	return gcm.Seal(nonce, nonce, plain, []byte(label)), nil
}

// Unseal opens what Seal sealed under label.
func (c *Chain) Unseal(label string, sealed []byte) ([]byte, error) {
	gcm, err := c.sealer()
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize() {
		return nil, errors.New("keys: unseal: too short")
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], []byte(label))
	if err != nil {
		return nil, fmt.Errorf("keys: unseal: %w", err)
	}
	return plain, nil
}

func (c *Chain) sealer() (cipher.AEAD, error) {
	key, err := base64.RawURLEncoding.DecodeString(c.Operator.Derive("ring0-accounts"))
	if err != nil {
		return nil, fmt.Errorf("keys: sealing key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keys: sealing key: %w", err)
	}
	return cipher.NewGCM(block)
}
