package keys

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"

	"enjin"
)

// ErrRevoked is returned by Check for a credential the account has revoked.
var ErrRevoked = errors.New("credential revoked")

// Check decodes a user JWT and applies the rules minting applies, against the claims of the
// account it claims to belong to: signed by one of that account's signing keys, a slug or UUID
// name, no bearer token, valid at now, no permissions of its own when a scoped key signed it,
// not revoked. It returns the decoded claims.
func Check(token string, ac *jwt.AccountClaims, now time.Time) (*jwt.UserClaims, error) {
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return nil, fmt.Errorf("keys: user jwt: %w", err)
	}
	if err := enjin.NodeID(uc.Name).Validate(); err != nil {
		return nil, fmt.Errorf("keys: user %s: %w", uc.Subject, err)
	}
	if uc.BearerToken {
		return nil, fmt.Errorf("keys: user %s: %w", uc.Name, ErrBearer)
	}
	t := now.Unix()
	if (uc.Expires != 0 && t >= uc.Expires) || (uc.NotBefore != 0 && t+int64(clockSkew/time.Second) < uc.NotBefore) {
		return nil, fmt.Errorf("keys: user %s: %w", uc.Name, ErrValidity)
	}
	if ac == nil {
		return nil, fmt.Errorf("keys: user %s: no account claims to check against: %w", uc.Name, ErrIssuer)
	}
	switch uc.IssuerAccount {
	case "":
		if uc.Issuer != ac.Subject {
			return nil, fmt.Errorf("keys: user %s issued by %s: %w", uc.Name, uc.Issuer, ErrIssuer)
		}
	case ac.Subject:
		if !ac.SigningKeys.Contains(uc.Issuer) {
			return nil, fmt.Errorf("keys: user %s: signer %s is not a key of account %s: %w", uc.Name, uc.Issuer, ac.Name, ErrIssuer)
		}
	default:
		return nil, fmt.Errorf("keys: user %s names account %s, not %s: %w", uc.Name, uc.IssuerAccount, ac.Subject, ErrIssuer)
	}
	if scope, ok := ac.SigningKeys.GetScope(uc.Issuer); ok && scope != nil {
		if !uc.HasEmptyPermissions() {
			return nil, fmt.Errorf("keys: user %s: %w", uc.Name, ErrScoped)
		}
	}
	if ac.IsClaimRevoked(uc) {
		return nil, fmt.Errorf("keys: user %s: %w", uc.Name, ErrRevoked)
	}
	return uc, nil
}

// CheckActivation checks an activation token before it goes into an import: it must be for
// importer, signed by the exporting account or one of its unscoped signing keys (a scoped key
// could otherwise open a private export), and unexpired.
func CheckActivation(token string, exporter *jwt.AccountClaims, importer string, now time.Time) (*jwt.ActivationClaims, error) {
	act, err := jwt.DecodeActivationClaims(token)
	if err != nil {
		return nil, fmt.Errorf("keys: activation: %w", err)
	}
	if act.Subject != importer {
		return nil, fmt.Errorf("keys: activation for %s, not %s: %w", act.Subject, importer, ErrIssuer)
	}
	switch act.IssuerAccount {
	case "":
		if act.Issuer != exporter.Subject {
			return nil, fmt.Errorf("keys: activation issued by %s: %w", act.Issuer, ErrIssuer)
		}
	case exporter.Subject:
		scope, ok := exporter.SigningKeys.GetScope(act.Issuer)
		if !exporter.SigningKeys.Contains(act.Issuer) || (ok && scope != nil) {
			return nil, fmt.Errorf("keys: activation signer %s is not an unscoped key of %s: %w", act.Issuer, exporter.Name, ErrIssuer)
		}
	default:
		return nil, fmt.Errorf("keys: activation names account %s, not %s: %w", act.IssuerAccount, exporter.Subject, ErrIssuer)
	}
	if act.Expires != 0 && now.Unix() >= act.Expires {
		return nil, fmt.Errorf("keys: activation: %w", ErrValidity)
	}
	return act, nil
}
