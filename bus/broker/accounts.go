package broker

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"

	"enjin"
	"enjin/bus"
	"enjin/keys"
)

// Init creates (or keeps) the trust chain under stateDir and signs every account JWT with the
// exports and imports of bus.Flows. It is what `enjin init` runs; running it again keeps every
// key and every revocation.
func Init(stateDir string) (*keys.Chain, error) {
	c, err := keys.Init(stateDir)
	if err != nil {
		return nil, err
	}
	if _, err := Provision(c, time.Now()); err != nil {
		return nil, err
	}
	return c, nil
}

// Tenants lists the tenants whose accounts exist in the chain.
func Tenants(c *keys.Chain) ([]enjin.TenantID, error) {
	names, err := c.Accounts()
	if err != nil {
		return nil, err
	}
	var ts []enjin.TenantID
	for _, n := range names {
		if t, ok := strings.CutPrefix(n, "T-"); ok {
			ts = append(ts, enjin.TenantID(t))
		}
	}
	return ts, nil
}

// Signed is one account's signed JWT.
type Signed struct{ Public, JWT string }

// Provision re-signs every account JWT from policy: limits, the private exports and imports
// of bus.Flows (with activation tokens checked before use), keeping each account's
// revocations and scoped signing keys from its current JWT. Tenant accounts come first: a
// server given an account that imports from one it does not know yet would stall fetching it.
func Provision(c *keys.Chain, now time.Time) ([]Signed, error) {
	tenants, err := Tenants(c)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, t := range tenants {
		names = append(names, keys.TenantAccount(t))
	}
	names = append(names, keys.FixedAccounts...)
	claims := map[string]*jwt.AccountClaims{}
	accts := map[string]*keys.Account{}
	for _, n := range names {
		a, err := c.Account(n)
		if err != nil {
			return nil, err
		}
		ac, err := baseClaims(a)
		if err != nil {
			return nil, err
		}
		accts[n], claims[n] = a, ac
	}
	if err := wireFlows(bus.Flows(tenants), accts, claims, now); err != nil {
		return nil, err
	}
	out := make([]Signed, 0, len(names))
	for _, n := range names {
		tok, err := c.SignAccount(accts[n], claims[n])
		if err != nil {
			return nil, err
		}
		out = append(out, Signed{accts[n].Public, tok})
	}
	return out, nil
}

// baseClaims starts an account's claims from policy, carrying over what only the running
// system knows: revocations, and the scoped signers ring 0 placed on a tenant account.
func baseClaims(a *keys.Account) (*jwt.AccountClaims, error) {
	ac := a.NewClaims()
	if a.Name == keys.OPS {
		ac.Limits.Subs = 10_000 // operators watch; they do not need more
	}
	old, err := a.Claims()
	if err != nil {
		return nil, err
	}
	if old == nil {
		return ac, nil
	}
	for pub, at := range old.Revocations {
		ac.RevokeAt(pub, time.Unix(at, 0))
	}
	for _, scope := range old.SigningKeys {
		if scope != nil { // unscoped keys come from the chain, not from the old JWT
			ac.SigningKeys.AddScopedSigner(scope)
		}
	}
	ac.Tags = old.Tags
	return ac, nil
}

// wireFlows adds each flow's private export to the exporter and its import, with a checked
// activation token, to the importer.
func wireFlows(flows []bus.Flow, accts map[string]*keys.Account, claims map[string]*jwt.AccountClaims, now time.Time) error {
	for _, f := range flows {
		exp, imp := accts[f.Exporter], accts[f.Importer]
		if exp == nil || imp == nil {
			return fmt.Errorf("broker: flow %s → %s: unknown account", f.Exporter, f.Importer)
		}
		typ := jwt.Stream
		if f.Kind == bus.Service {
			typ = jwt.Service
		}
		ec := claims[f.Exporter]
		if !hasExport(ec, f.Subject) {
			e := &jwt.Export{Name: f.Subject, Subject: jwt.Subject(f.Subject), Type: typ, TokenReq: true}
			if typ == jwt.Service {
				e.ResponseType = jwt.ResponseTypeSingleton
			}
			ec.Exports.Add(e)
		}
		act := jwt.NewActivationClaims(imp.Public)
		act.Name = f.Exporter + "→" + f.Importer
		act.ImportSubject = jwt.Subject(f.Subject)
		act.ImportType = typ
		act.IssuerAccount = exp.Public
		act.IssuedAt = now.Unix()
		tok, err := act.Encode(exp.SigningKeyPair())
		if err != nil {
			return fmt.Errorf("broker: activation %s: %w", act.Name, err)
		}
		if _, err := keys.CheckActivation(tok, ec, imp.Public, now); err != nil {
			return fmt.Errorf("broker: flow %s: %w", act.Name, err)
		}
		claims[f.Importer].Imports.Add(&jwt.Import{
			Name:         f.Exporter + ":" + f.Subject,
			Type:         typ,
			Account:      exp.Public,
			Subject:      jwt.Subject(f.Subject),
			LocalSubject: jwt.RenamingSubject(f.Local),
			Token:        tok,
			Share:        f.Attest, // the responder learns the caller, attested by the server
		})
	}
	return nil
}

func hasExport(ac *jwt.AccountClaims, subj string) bool {
	for _, e := range ac.Exports {
		if string(e.Subject) == subj {
			return true
		}
	}
	return false
}
