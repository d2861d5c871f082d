package inventory

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// Ring0Member is a ring 0 member as it announced itself.
type Ring0Member struct {
	Member string    `json:"member"`
	API    string    `json:"api"`
	NATS   string    `json:"nats"`
	Seen   time.Time `json:"seen"`
	// AdminHash is the SHA-256 of the member's admin token: every member accepts it.
	AdminHash []byte `json:"-"`
}

// Announce records that m answers where it says, now. A member of another name that answered
// at the same API before (the same ring 0 under an earlier name, say) is forgotten, and so is
// any member silent for a day.
func (s *Store) Announce(ctx context.Context, m Ring0Member) error {
	return pgErr("announce member "+m.Member, pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM ring0_members WHERE member <> $1 AND (api = $2 OR seen < now() - interval '1 day')`,
			m.Member, m.API); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO ring0_members (member, api, nats, admin_hash) VALUES ($1, $2, $3, $4)
			ON CONFLICT (member) DO UPDATE SET api = $2, nats = $3, admin_hash = $4, seen = now()`,
			m.Member, m.API, m.NATS, m.AdminHash)
		return err
	}))
}

// Members lists the ring 0 members that announced themselves within since, by name.
func (s *Store) Members(ctx context.Context, since time.Duration) ([]Ring0Member, error) {
	rows, err := s.pool.Query(ctx, `SELECT member, api, nats, seen, admin_hash FROM ring0_members
		WHERE seen > now() - $1::interval ORDER BY member`, fmt.Sprintf("%d milliseconds", since.Milliseconds()))
	if err != nil {
		return nil, pgErr("members", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (m Ring0Member, err error) {
		err = r.Scan(&m.Member, &m.API, &m.NATS, &m.Seen, &m.AdminHash)
		return m, err
	})
	return out, pgErr("members", err)
}

// PutNodeSecret records node's secret name, sealed by the caller, replacing any before.
func (s *Store) PutNodeSecret(ctx context.Context, node enjin.NodeID, name string, sealed []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO node_secrets (node_id, name, sealed) VALUES ($1, $2, $3)
		ON CONFLICT (node_id, name) DO UPDATE SET sealed = $3, updated = now()`, string(node), name, sealed)
	return pgErr("node secret "+string(node)+"/"+name, err)
}

// NodeSecret is node's secret name as sealed (ErrNotFound: none).
func (s *Store) NodeSecret(ctx context.Context, node enjin.NodeID, name string) ([]byte, error) {
	var sealed []byte
	err := s.pool.QueryRow(ctx, `SELECT sealed FROM node_secrets WHERE node_id = $1 AND name = $2`, string(node), name).Scan(&sealed)
	return sealed, pgErr("node secret "+string(node)+"/"+name, err)
}
