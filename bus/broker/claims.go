package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"

	"enjin"
	"enjin/bus"
	"enjin/keys"
)

// Revoke revokes every credential of userPub in account issued up to now, re-signs the
// account and pushes it: the server closes the user's live connections. The user must be
// re-issued with a new key (revocation has one-second granularity). Entries older than
// keys.MaxTTL are pruned, since every credential they could match has expired.
func (b *Broker) Revoke(ctx context.Context, account, userPub string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return shared(ctx, b.share, b.chain, func() error { return b.revoke(ctx, account, userPub) })
}

func (b *Broker) revoke(ctx context.Context, account, userPub string) error {
	a, err := b.chain.Account(account)
	if err != nil {
		return err
	}
	ac, err := a.Claims()
	if err != nil {
		return err
	}
	if ac == nil {
		return fmt.Errorf("broker: revoke in %s: account never signed", account)
	}
	now := time.Now()
	ac.RevokeAt(userPub, now)
	for pub, at := range ac.Revocations {
		if now.Sub(time.Unix(at, 0)) > keys.MaxTTL {
			ac.ClearRevocation(pub)
		}
	}
	tok, err := b.chain.SignAccount(a, ac)
	if err != nil {
		return err
	}
	return b.push(ctx, tok)
}

// AddTenant creates tenant t's account (if new) with a scoped signing key for each of
// scopedKeys (held by the ring 1 nodes that host it), wires its flows into RING1 and OPS,
// and pushes every changed account.
func (b *Broker) AddTenant(ctx context.Context, t enjin.TenantID, scopedKeys ...string) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("broker: add tenant: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return shared(ctx, b.share, b.chain, func() error { return b.addTenant(ctx, t, scopedKeys) })
}

// EnsureTenant returns the public key of tenant t's account, creating the account's keys
// if it has none: the key a ring 1 node scopes its signing key to before AddTenant.
func (b *Broker) EnsureTenant(ctx context.Context, t enjin.TenantID) (pub string, err error) {
	if err := t.Validate(); err != nil {
		return "", fmt.Errorf("broker: tenant: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	err = shared(ctx, b.share, b.chain, func() error {
		a, _, err := b.chain.EnsureAccount(keys.TenantAccount(t))
		if err == nil {
			pub = a.Public
		}
		return err
	})
	return pub, err
}

func (b *Broker) addTenant(ctx context.Context, t enjin.TenantID, scopedKeys []string) error {
	a, _, err := b.chain.EnsureAccount(keys.TenantAccount(t))
	if err != nil {
		return err
	}
	ac, err := a.Claims()
	if err != nil {
		return err
	}
	if ac == nil {
		ac = a.NewClaims()
	}
	for _, k := range scopedKeys {
		if err := keys.AddScope(ac, bus.TenantScope(k), bus.TenantGrant()); err != nil {
			return err
		}
	}
	if _, err := b.chain.SignAccount(a, ac); err != nil {
		return err
	}
	return b.reprovision(ctx)
}

// reprovision re-signs every account from policy and pushes them all.
func (b *Broker) reprovision(ctx context.Context) error {
	jwts, err := Provision(b.chain, time.Now())
	if err != nil {
		return err
	}
	for _, a := range jwts { // in Provision's order: exporters before importers
		if err := b.push(ctx, a.JWT); err != nil {
			return err
		}
	}
	return nil
}

// RemoveTenant disables tenant t's account — no connections, every credential it ever
// issued revoked, no scoped signers — pushes that, retires the account's keys and re-wires
// the flows of the accounts that imported from it. Live connections are closed by the push.
func (b *Broker) RemoveTenant(ctx context.Context, t enjin.TenantID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return shared(ctx, b.share, b.chain, func() error { return b.removeTenant(ctx, t) })
}

func (b *Broker) removeTenant(ctx context.Context, t enjin.TenantID) error {
	name := keys.TenantAccount(t)
	a, err := b.chain.Account(name)
	if err != nil {
		return err
	}
	ac := a.NewClaims()
	ac.Limits.Conn = 0
	ac.Limits.LeafNodeConn = 0
	now := time.Now()
	ac.RevokeAt(jwt.All, now)
	tok, err := b.chain.SignAccount(a, ac)
	if err != nil {
		return err
	}
	if err := b.push(ctx, tok); err != nil {
		return err
	}
	if err := b.chain.RetireAccount(name, now); err != nil {
		return err
	}
	return b.reprovision(ctx)
}
