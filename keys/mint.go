package keys

import (
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"enjin"
)

// DefaultTTL is how long a minted credential lives when the request names no expiry.
// Credentials are short-lived and renewed; revocation covers the time in between.
const DefaultTTL = 12 * time.Hour

// MaxTTL is the longest a credential may live; revocation entries older than this are
// pruned from account JWTs.
const MaxTTL = 24 * time.Hour

// clockSkew is how far in the future a not-before may lie and still count as valid now.
const clockSkew = 5 * time.Second

// UserRequest asks an issuer for a user credential.
type UserRequest struct {
	Name      string      // the node id: a slug or UUID (it may appear in subjects)
	PublicKey string      // the user's public key (U…); empty makes a new key pair
	Perms     Permissions // must fit the issuer's grant; must be empty for scoped issuers
	NotBefore time.Time   // zero: now
	Expires   time.Time   // zero: now + DefaultTTL
	Bearer    bool        // always refused; present so callers cannot ask quietly
	ConnTypes []string    // allowed connection types; empty allows all
}

// Creds is a minted user credential.
type Creds struct {
	Name      string
	PublicKey string
	JWT       string
	Seed      []byte // nil when the request named an existing public key
	Expires   time.Time
}

// File formats c as a standard .creds file (JWT and seed). It needs the seed.
func (c *Creds) File() ([]byte, error) {
	if c.Seed == nil {
		return nil, fmt.Errorf("keys: creds for %s: no seed to write", c.Name)
	}
	b, err := jwt.FormatUserConfig(c.JWT, c.Seed)
	if err != nil {
		return nil, fmt.Errorf("keys: format creds for %s: %w", c.Name, err)
	}
	return b, nil
}

// Issuer mints users of one account with that account's signing key, never beyond its grant.
type Issuer struct {
	account string // account public key
	name    string
	kp      nkeys.KeyPair
	grant   Grant
	scoped  bool
}

// Account is the public key of the account the issuer mints users for.
func (i *Issuer) Account() string { return i.account }

// Grant is the most the issuer may hand out.
func (i *Issuer) Grant() Grant { return i.grant }

// Narrow returns an issuer for the same account limited to g; it fails if g is wider than
// the issuer's own grant.
func (i *Issuer) Narrow(g Grant) (*Issuer, error) {
	in, err := g.Within(i.grant)
	if err != nil {
		return nil, err
	}
	n := *i
	n.grant = in.normalized()
	return &n, nil
}

// NewScopedIssuer returns an issuer for a scoped signing key kp of account accountPub. The
// scope's template, which ring 0 put in the account JWT, fixes every permission; minted users
// carry none of their own.
func NewScopedIssuer(kp nkeys.KeyPair, accountPub string) *Issuer {
	return &Issuer{account: accountPub, kp: kp, scoped: true}
}

// Mint issues a user credential for req, checked against the issuer's grant.
func (i *Issuer) Mint(req UserRequest, now time.Time) (*Creds, error) {
	if err := enjin.NodeID(req.Name).Validate(); err != nil {
		return nil, fmt.Errorf("keys: mint: %w", err)
	}
	if req.Bearer {
		return nil, fmt.Errorf("keys: mint %s: %w", req.Name, ErrBearer)
	}
	nbf, exp := req.NotBefore, req.Expires
	if exp.IsZero() {
		exp = now.Add(DefaultTTL)
	}
	if !exp.After(now) || nbf.After(now.Add(clockSkew)) || exp.After(now.Add(MaxTTL)) {
		return nil, fmt.Errorf("keys: mint %s: valid %v–%v: %w", req.Name, nbf, exp, ErrValidity)
	}
	var perms Permissions
	if i.scoped {
		if !req.Perms.IsZero() || len(req.ConnTypes) > 0 {
			return nil, fmt.Errorf("keys: mint %s: %w", req.Name, ErrScoped)
		}
	} else {
		p, err := req.Perms.Within(i.grant)
		if err != nil {
			return nil, fmt.Errorf("keys: mint %s: %w", req.Name, err)
		}
		perms = p
	}
	c := &Creds{Name: req.Name, PublicKey: req.PublicKey, Expires: exp.Truncate(time.Second)}
	if c.PublicKey == "" {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("keys: mint %s: %w", req.Name, err)
		}
		c.PublicKey, _ = kp.PublicKey()
		c.Seed, _ = kp.Seed()
	} else if !nkeys.IsValidPublicUserKey(c.PublicKey) {
		return nil, fmt.Errorf("keys: mint %s: %q is not a user public key", req.Name, c.PublicKey)
	}
	uc := jwt.NewUserClaims(c.PublicKey)
	uc.Name = req.Name
	uc.IssuerAccount = i.account
	uc.IssuedAt = now.Unix()
	uc.Expires = c.Expires.Unix()
	if !nbf.IsZero() {
		uc.NotBefore = nbf.Unix()
	}
	if i.scoped {
		uc.SetScoped(true)
	} else {
		uc.Permissions = perms.jwt()
		uc.AllowedConnectionTypes = slices.Clone(req.ConnTypes)
	}
	tok, err := uc.Encode(i.kp)
	if err != nil {
		return nil, fmt.Errorf("keys: mint %s: %w", req.Name, err)
	}
	c.JWT = tok
	return c, nil
}

// jwt converts p to the claims form, with replies limited to one per request within a minute.
func (p Permissions) jwt() jwt.Permissions {
	var out jwt.Permissions
	out.Pub.Allow.Add(p.PubAllow...)
	out.Pub.Deny.Add(p.PubDeny...)
	out.Sub.Allow.Add(p.SubAllow...)
	out.Sub.Deny.Add(p.SubDeny...)
	if p.Resp {
		out.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
	}
	return out
}
