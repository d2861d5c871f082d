package inventory

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"enjin/keys"
)

// accountsLock is the transaction-scoped advisory lock under which ring 0 members change
// accounts ("enjin" and 2).
const accountsLock = 0x656e6a696e02

// SharedAccounts runs fn while no other ring 0 member changes accounts, with the accounts
// the store holds; the accounts fn returns are written in the same transaction, which
// commits only if fn succeeds. fn should be quick: every member's account changes wait.
func (s *Store) SharedAccounts(ctx context.Context, fn func(have []keys.SharedAccount) (put []keys.SharedAccount, err error)) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, accountsLock); err != nil {
			return fmt.Errorf("inventory: accounts lock: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT name, public, sealed, jwt, retired IS NOT NULL FROM ring0_accounts ORDER BY name`)
		if err != nil {
			return fmt.Errorf("inventory: accounts: %w", err)
		}
		have, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (a keys.SharedAccount, err error) {
			err = r.Scan(&a.Name, &a.Public, &a.Sealed, &a.JWT, &a.Retired)
			return a, err
		})
		if err != nil {
			return fmt.Errorf("inventory: accounts: %w", err)
		}
		put, err := fn(have)
		if err != nil {
			return err
		}
		for _, a := range put {
			// A name keeps its identity: a different key under a retired name is a new tenant
			// of the same name, which takes the row over; under a live one it is refused.
			tag, err := tx.Exec(ctx, `
				INSERT INTO ring0_accounts (name, public, sealed, jwt, retired)
				VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)
				ON CONFLICT (name) DO UPDATE SET public = $2, sealed = $3, jwt = $4,
					retired = CASE WHEN $5 THEN coalesce(ring0_accounts.retired, now()) END, updated = now()
				WHERE ring0_accounts.public = $2 OR ring0_accounts.retired IS NOT NULL`,
				a.Name, a.Public, a.Sealed, a.JWT, a.Retired)
			if err != nil {
				return fmt.Errorf("inventory: account %s: %w", a.Name, err)
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("inventory: account %s: another key holds the name: %w", a.Name, ErrConflict)
			}
		}
		return nil
	})
}
