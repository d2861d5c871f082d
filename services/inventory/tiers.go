package inventory

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// Tier is a set of nodes serving one role together: one primary and replicas.
type Tier struct {
	ID        string         `json:"id"`
	Ring      enjin.Ring     `json:"ring"`
	Label     string         `json:"label"`
	Replicas  int            `json:"replicas"` // how many replicas promotion keeps
	Members   []Member       `json:"members"`
	Metadata  map[string]any `json:"metadata"`
	Version   int64          `json:"version"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// Member is a node's place in a tier.
type Member struct {
	Node        enjin.NodeID `json:"node"`
	Role        string       `json:"role"`
	Epoch       int64        `json:"epoch"`
	Compartment string       `json:"compartment,omitempty"`
	State       string       `json:"state"`
}

// TierPatch changes some fields of a tier; nil fields are left alone.
type TierPatch struct {
	Label    *string         `json:"label"`
	Replicas *int            `json:"replicas"`
	Metadata *map[string]any `json:"metadata"`
}

const tierCols = `t.id::text, t.ring, t.label, t.replicas,
	coalesce((SELECT jsonb_agg(jsonb_build_object('node', m.node_id, 'role', m.role, 'epoch', m.epoch,
			'compartment', coalesce(n.compartment::text, ''), 'state', n.state) ORDER BY m.role, m.node_id)
		FROM node_tiers m JOIN nodes n ON n.id = m.node_id WHERE m.tier_id = t.id), '[]'),
	t.metadata, t.version, t.created_at, t.updated_at`

func scanTier(r pgx.Row) (Tier, error) {
	var t Tier
	err := r.Scan(&t.ID, &t.Ring, &t.Label, &t.Replicas, &t.Members, &t.Metadata, &t.Version, &t.CreatedAt, &t.UpdatedAt)
	return t, err
}

// lockTier locks tier id against concurrent writers, then reads it. The read is a statement
// of its own: under READ COMMITTED a statement that waited for the lock would otherwise see
// the members as they were before the writer it waited for.
func lockTier(ctx context.Context, tx pgx.Tx, id string) (Tier, error) {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM tiers WHERE id::text = $1 FOR UPDATE`, id); err != nil {
		return Tier{}, err
	}
	return getTier(ctx, tx, id)
}

func getTier(ctx context.Context, q pgx.Tx, id string) (Tier, error) {
	return scanTier(q.QueryRow(ctx, `SELECT `+tierCols+` FROM tiers t WHERE t.id::text = $1`, id))
}

// CreateTier stores t with a new id if it has none.
func (s *Store) CreateTier(ctx context.Context, t Tier) (Tier, error) {
	if t.ID == "" {
		t.ID = NewID()
	}
	if t.Metadata == nil {
		t.Metadata = map[string]any{}
	}
	var out Tier
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO tiers (id, ring, label, replicas, metadata) VALUES ($1, $2, $3, $4, $5)`,
			t.ID, t.Ring, t.Label, t.Replicas, t.Metadata); err != nil {
			return err
		}
		var err error
		if out, err = getTier(ctx, tx, t.ID); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "tier", out.ID, out.Version, out, false)
	})
	return out, pgErr("create tier", err)
}

// GetTier returns tier id with its members.
func (s *Store) GetTier(ctx context.Context, id string) (Tier, error) {
	t, err := scanTier(s.pool.QueryRow(ctx, `SELECT `+tierCols+` FROM tiers t WHERE t.id::text = $1`, id))
	return t, pgErr("tier "+id, err)
}

// ListTiers returns the tiers whose metadata contains meta.
func (s *Store) ListTiers(ctx context.Context, meta map[string]string) ([]Tier, error) {
	if meta == nil {
		meta = map[string]string{}
	}
	rows, err := s.pool.Query(ctx, `SELECT `+tierCols+` FROM tiers t WHERE t.metadata @> $1 ORDER BY t.label, t.id LIMIT 10000`, meta)
	if err != nil {
		return nil, pgErr("list tiers", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Tier, error) { return scanTier(r) })
	return out, pgErr("list tiers", err)
}

// UpdateTier applies p to tier id if its version is still version.
func (s *Store) UpdateTier(ctx context.Context, id string, version int64, p TierPatch) (Tier, error) {
	var out Tier
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var meta any
		if p.Metadata != nil {
			meta = *p.Metadata
		}
		tag, err := tx.Exec(ctx, `UPDATE tiers SET label = coalesce($3, label), replicas = coalesce($4, replicas),
			metadata = coalesce($5, metadata), version = version + 1, updated_at = now()
			WHERE id::text = $1 AND version = $2`, id, version, p.Label, p.Replicas, meta)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return missingOrStale(ctx, tx, "tiers", id)
		}
		return bumpedTier(ctx, tx, id, &out, false)
	})
	return out, pgErr("update tier "+id, err)
}

// bumpedTier reads tier id after a write and records the version in history.
func bumpedTier(ctx context.Context, tx pgx.Tx, id string, out *Tier, deleted bool) error {
	t, err := getTier(ctx, tx, id)
	if err != nil {
		return err
	}
	*out = t
	return recordHistory(ctx, tx, "tier", id, t.Version, t, deleted)
}

// DeleteTier deletes tier id if its version is still version.
func (s *Store) DeleteTier(ctx context.Context, id string, version int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		t, err := lockTier(ctx, tx, id)
		if err != nil {
			return err
		}
		if t.Version != version {
			return fmt.Errorf("tier %s: %w", id, ErrConflict)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tiers WHERE id = $1::uuid`, t.ID); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "tier", id, t.Version+1, t, true)
	})
	return pgErr("delete tier "+id, err)
}

// SetMember puts node into tier with role (primary or replica), at the tier's current epoch.
// A second primary is refused (ErrExists); the tier's version moves on.
func (s *Store) SetMember(ctx context.Context, tier string, node enjin.NodeID, role string) (Tier, error) {
	if role != "primary" && role != "replica" {
		return Tier{}, fmt.Errorf("inventory: role %q: %w", role, ErrInvalid)
	}
	var out Tier
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id string
		if err := tx.QueryRow(ctx, `SELECT id::text FROM tiers WHERE id::text = $1 FOR UPDATE`, tier).Scan(&id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO node_tiers (node_id, tier_id, role, epoch)
			VALUES ($1, $2, $3, (SELECT coalesce(max(epoch), 0) FROM node_tiers WHERE tier_id = $2))
			ON CONFLICT (node_id, tier_id) DO UPDATE SET role = excluded.role`, string(node), id, role); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE tiers SET version = version + 1, updated_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		return bumpedTier(ctx, tx, id, &out, false)
	})
	return out, pgErr("set member", err)
}

// RemoveMember takes node out of tier.
func (s *Store) RemoveMember(ctx context.Context, tier string, node enjin.NodeID) (Tier, error) {
	var out Tier
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Lock the tier first, in the same order as every other tier writer.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM tiers WHERE id::text = $1 FOR UPDATE`, tier); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM node_tiers WHERE tier_id::text = $1 AND node_id = $2`, tier, string(node))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("member %s of tier %s: %w", node, tier, ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `UPDATE tiers SET version = version + 1, updated_at = now() WHERE id::text = $1`, tier); err != nil {
			return err
		}
		return bumpedTier(ctx, tx, tier, &out, false)
	})
	return out, pgErr("remove member", err)
}
