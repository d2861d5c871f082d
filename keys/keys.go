// Package keys makes and reads enjin's trust chain: the NATS operator, the accounts of the
// rings (SYS, RING0, RING1, OPS) and of tenants, scoped signing keys, user credentials and the
// attestation keys nodes sign observations with.
//
// keys is pure: no network and no server. Seeds are written with mode 0600 and never
// overwritten; Init on an existing directory keeps every key it finds. Minting only narrows:
// an Issuer refuses any permission outside its grant, any name that is not a slug or UUID,
// bearer tokens, and credentials that are not valid now. Check applies the same rules to a
// credential someone else minted.
//
// keys imports only rings and the nkeys/jwt libraries; bus, guest, the services that keep or
// check credentials (inventory, api), the rings and cmd/enjin import it.
package keys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"

	"enjin"
)

// The accounts every enjin cloud has. Tenant accounts are named TenantAccount(t).
const (
	SYS   = "SYS"
	RING0 = "RING0"
	RING1 = "RING1"
	OPS   = "OPS"
)

// FixedAccounts lists the ring accounts Init creates, in a stable order.
var FixedAccounts = []string{SYS, RING0, RING1, OPS}

// TenantAccount is the account name of tenant t.
func TenantAccount(t enjin.TenantID) string { return "T-" + string(t) }

// Sentinel errors for decisions callers make.
var (
	ErrEscalation = errors.New("permission outside the issuer's grant")
	ErrBearer     = errors.New("bearer tokens are refused")
	ErrValidity   = errors.New("credential not valid now")
	ErrIssuer     = errors.New("issuer not allowed for account")
	ErrScoped     = errors.New("scoped users carry no permissions of their own")
	ErrNoKey      = errors.New("key not found")
)

// Chain is the operator and the accounts it signs, as kept in a state directory.
type Chain struct {
	dir      string
	Operator *Operator

	mu       sync.Mutex
	accounts map[string]*Account
}

// Dir is the directory the chain's keys live under (<state>/keys).
func (c *Chain) Dir() string { return c.dir }

// Init creates the trust chain under stateDir/keys, keeping any key already there, and returns
// it. It is safe to run again: a second run changes nothing.
func Init(stateDir string) (*Chain, error) {
	dir := filepath.Join(stateDir, "keys")
	if err := os.MkdirAll(filepath.Join(dir, "accounts"), 0o700); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	op, err := initOperator(dir)
	if err != nil {
		return nil, err
	}
	c := &Chain{dir: dir, Operator: op, accounts: map[string]*Account{}}
	for _, name := range FixedAccounts {
		if _, _, err := c.EnsureAccount(name); err != nil {
			return nil, err
		}
	}
	if op.Claims.SystemAccount == "" {
		sys, _ := c.Account(SYS)
		if err := op.setSystemAccount(sys.Public); err != nil {
			return nil, err
		}
	}
	if _, err := c.CA(); err != nil { // made with the chain, so its copies share it
		return nil, err
	}
	return c, nil
}

// Load reads an existing chain; it fails if Init has not run on stateDir.
func Load(stateDir string) (*Chain, error) {
	dir := filepath.Join(stateDir, "keys")
	op, err := loadOperator(dir)
	if err != nil {
		return nil, err
	}
	c := &Chain{dir: dir, Operator: op, accounts: map[string]*Account{}}
	for _, name := range FixedAccounts {
		if _, err := c.Account(name); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Account returns the named account, loading it from disk if needed.
func (c *Chain) Account(name string) (*Account, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.accounts[name]; ok {
		return a, nil
	}
	if err := validAccountName(name); err != nil {
		return nil, err
	}
	a, err := loadAccount(filepath.Join(c.dir, "accounts", name), name)
	if err != nil {
		return nil, err
	}
	c.accounts[name] = a
	return a, nil
}

// EnsureAccount returns the named account, creating its keys if they do not exist yet.
func (c *Chain) EnsureAccount(name string) (a *Account, created bool, err error) {
	if a, err := c.Account(name); err == nil {
		return a, false, nil
	} else if !errors.Is(err, ErrNoKey) {
		return nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a, err = createAccount(filepath.Join(c.dir, "accounts", name), name)
	if err != nil {
		return nil, false, err
	}
	c.accounts[name] = a
	return a, true, nil
}

// RetireAccount takes a tenant account out of the chain: its keys move to
// accounts/.retired-<name>-<unix time> (kept for forensics, never used again) and Accounts no
// longer lists it. The ring accounts cannot be retired.
func (c *Chain) RetireAccount(name string, now time.Time) error {
	if !strings.HasPrefix(name, "T-") {
		return fmt.Errorf("keys: retire %s: only tenant accounts retire", name)
	}
	if err := validAccountName(name); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dir := filepath.Join(c.dir, "accounts", name)
	to := filepath.Join(c.dir, "accounts", fmt.Sprintf(".retired-%s-%d", name, now.UnixNano()))
	if err := os.Rename(dir, to); err != nil {
		return fmt.Errorf("keys: retire %s: %w", name, err)
	}
	delete(c.accounts, name)
	return nil
}

// Accounts lists the names of the accounts on disk, sorted.
func (c *Chain) Accounts() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(c.dir, "accounts"))
	if err != nil {
		return nil, fmt.Errorf("keys: list accounts: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && validAccountName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// SignAccount signs claims with the operator signing key, stores the JWT as the account's
// current one and returns it. Only ring 0 holds the operator signing key.
func (c *Chain) SignAccount(a *Account, ac *jwt.AccountClaims) (string, error) {
	if ac.Subject != a.Public {
		return "", fmt.Errorf("keys: sign account %s: claims are for %s", a.Name, ac.Subject)
	}
	ac.Limits.DisallowBearer = true
	tok, err := ac.Encode(c.Operator.signing)
	if err != nil {
		return "", fmt.Errorf("keys: sign account %s: %w", a.Name, err)
	}
	if err := a.storeJWT(tok); err != nil {
		return "", err
	}
	return tok, nil
}

func validAccountName(name string) error {
	if slices.Contains(FixedAccounts, name) {
		return nil
	}
	if t, ok := strings.CutPrefix(name, "T-"); ok {
		return enjin.TenantID(t).Validate()
	}
	return fmt.Errorf("keys: account name %q: not a ring account or T-<tenant>", name)
}
