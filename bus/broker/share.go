package broker

import (
	"context"
	"fmt"
	"time"

	"enjin/keys"
)

// Share is where ring 0 members keep the accounts they all sign from (the inventory's
// SharedAccounts): it runs fn while no other member changes accounts, with the accounts it
// holds, and writes back what fn returns in the same transaction.
type Share interface {
	SharedAccounts(ctx context.Context, fn func(have []keys.SharedAccount) (put []keys.SharedAccount, err error)) error
}

// shareWait bounds the wait for the store at start, when the broker has no caller's context.
const shareWait = 30 * time.Second

// shared runs fn, which changes accounts in chain, as one step of the cluster's account
// history: with share set, the chain first takes in what the store holds — accounts other
// members made, their latest JWTs, retirements — and what fn changed (new accounts, new
// JWTs, retired accounts) is written back before another member may look. Without share (a
// lone ring 0) fn just runs.
func shared(ctx context.Context, share Share, chain *keys.Chain, fn func() error) error {
	if share == nil {
		return fn()
	}
	return share.SharedAccounts(ctx, func(have []keys.SharedAccount) ([]keys.SharedAccount, error) {
		stored := map[string]keys.SharedAccount{}
		for _, s := range have {
			stored[s.Name] = s
			if err := chain.Adopt(s); err != nil {
				return nil, fmt.Errorf("broker: take in the cluster's account %s (does this member hold the cluster's keys/?): %w", s.Name, err)
			}
		}
		if err := fn(); err != nil {
			return nil, err
		}
		names, err := chain.Accounts()
		if err != nil {
			return nil, err
		}
		var put []keys.SharedAccount
		now := map[string]bool{}
		for _, n := range names {
			now[n] = true
			a, err := chain.Account(n)
			if err != nil {
				return nil, err
			}
			tok, err := a.JWT()
			if err != nil {
				return nil, err
			}
			if s, ok := stored[n]; ok && !s.Retired && s.Public == a.Public && s.JWT == tok {
				continue // unchanged: not sealed again
			}
			s, err := chain.Share(n)
			if err != nil {
				return nil, err
			}
			put = append(put, s)
		}
		for n, s := range stored {
			if !now[n] && !s.Retired { // fn retired it
				s.Retired = true
				put = append(put, s)
			}
		}
		return put, nil
	})
}
