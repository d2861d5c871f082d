package inventory

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// Compartment is a failure or placement domain (region, site, row, rack, power feed). Its
// parents make a DAG: a rack may be in a row and on a power feed.
type Compartment struct {
	ID        string         `json:"id"`
	Ring      enjin.Ring     `json:"ring"`
	Type      string         `json:"type"`
	Label     string         `json:"label"`
	Parents   []string       `json:"parents"`
	Metadata  map[string]any `json:"metadata"`
	Version   int64          `json:"version"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// CompartmentPatch changes some fields of a compartment; nil fields are left alone.
type CompartmentPatch struct {
	Type     *string         `json:"type"`
	Label    *string         `json:"label"`
	Parents  *[]string       `json:"parents"`
	Metadata *map[string]any `json:"metadata"`
}

const compartmentCols = `c.id::text, c.ring, c.type, c.label,
	coalesce((SELECT array_agg(e.parent::text ORDER BY e.parent) FROM compartment_edges e WHERE e.child = c.id), '{}'),
	c.metadata, c.version, c.created_at, c.updated_at`

func scanCompartment(r pgx.Row) (Compartment, error) {
	var c Compartment
	err := r.Scan(&c.ID, &c.Ring, &c.Type, &c.Label, &c.Parents, &c.Metadata, &c.Version, &c.CreatedAt, &c.UpdatedAt)
	return c, err
}

// NewID returns a random (version 4) UUID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// CreateCompartment stores c (with a new id if it has none) and its parent edges.
func (s *Store) CreateCompartment(ctx context.Context, c Compartment) (Compartment, error) {
	if c.ID == "" {
		c.ID = NewID()
	}
	if c.Metadata == nil {
		c.Metadata = map[string]any{}
	}
	var out Compartment
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO compartments (id, ring, type, label, metadata) VALUES ($1, $2, $3, $4, $5)`,
			c.ID, c.Ring, c.Type, c.Label, c.Metadata); err != nil {
			return err
		}
		if err := setParents(ctx, tx, c.ID, c.Parents); err != nil {
			return err
		}
		var err error
		if out, err = scanCompartment(tx.QueryRow(ctx, `SELECT `+compartmentCols+` FROM compartments c WHERE c.id = $1`, c.ID)); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "compartment", out.ID, out.Version, out, false)
	})
	return out, pgErr("create compartment", err)
}

// setParents replaces id's parent edges, refusing any edge that would close a cycle. The
// edges table is locked for the check so two writers cannot close a cycle between them.
func setParents(ctx context.Context, tx pgx.Tx, id string, parents []string) error {
	if _, err := tx.Exec(ctx, `LOCK TABLE compartment_edges IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM compartment_edges WHERE child = $1`, id); err != nil {
		return err
	}
	if len(parents) == 0 {
		return nil
	}
	var cycle bool
	err := tx.QueryRow(ctx, `WITH RECURSIVE below (id) AS (
			SELECT $1::uuid
			UNION SELECT e.child FROM compartment_edges e JOIN below b ON e.parent = b.id)
		SELECT EXISTS (SELECT 1 FROM below WHERE id = ANY($2::uuid[]))`, id, parents).Scan(&cycle)
	if err != nil {
		return err
	}
	if cycle {
		return fmt.Errorf("parents of %s would make a cycle: %w", id, ErrInvalid)
	}
	_, err = tx.Exec(ctx, `INSERT INTO compartment_edges (parent, child) SELECT DISTINCT p, $1::uuid FROM unnest($2::uuid[]) p`, id, parents)
	return err
}

// GetCompartment returns compartment id.
func (s *Store) GetCompartment(ctx context.Context, id string) (Compartment, error) {
	c, err := scanCompartment(s.pool.QueryRow(ctx, `SELECT `+compartmentCols+` FROM compartments c WHERE c.id::text = $1`, id))
	return c, pgErr("compartment "+id, err)
}

// ListCompartments returns the compartments whose metadata contains meta, by label.
func (s *Store) ListCompartments(ctx context.Context, meta map[string]string) ([]Compartment, error) {
	if meta == nil {
		meta = map[string]string{}
	}
	rows, err := s.pool.Query(ctx, `SELECT `+compartmentCols+` FROM compartments c WHERE c.metadata @> $1 ORDER BY c.label, c.id LIMIT 10000`, meta)
	if err != nil {
		return nil, pgErr("list compartments", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Compartment, error) { return scanCompartment(r) })
	return out, pgErr("list compartments", err)
}

// UpdateCompartment applies p to compartment id if its version is still version.
func (s *Store) UpdateCompartment(ctx context.Context, id string, version int64, p CompartmentPatch) (Compartment, error) {
	var out Compartment
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var meta any
		if p.Metadata != nil {
			meta = *p.Metadata
		}
		tag, err := tx.Exec(ctx, `UPDATE compartments SET type = coalesce($3, type), label = coalesce($4, label),
			metadata = coalesce($5, metadata), version = version + 1, updated_at = now()
			WHERE id::text = $1 AND version = $2`, id, version, p.Type, p.Label, meta)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return missingOrStale(ctx, tx, "compartments", id)
		}
		if p.Parents != nil {
			if err := setParents(ctx, tx, id, *p.Parents); err != nil {
				return err
			}
		}
		if out, err = scanCompartment(tx.QueryRow(ctx, `SELECT `+compartmentCols+` FROM compartments c WHERE c.id::text = $1`, id)); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "compartment", id, out.Version, out, false)
	})
	return out, pgErr("update compartment "+id, err)
}

// DeleteCompartment deletes compartment id if its version is still version. Its edges go
// with it; nodes in it keep running, with no compartment.
func (s *Store) DeleteCompartment(ctx context.Context, id string, version int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The edges lock first, as setParents takes it, so the two never wait on each other.
		if _, err := tx.Exec(ctx, `LOCK TABLE compartment_edges IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM compartments WHERE id::text = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		c, err := scanCompartment(tx.QueryRow(ctx, `SELECT `+compartmentCols+` FROM compartments c WHERE c.id::text = $1`, id))
		if err != nil {
			return err
		}
		if c.Version != version {
			return fmt.Errorf("compartment %s: %w", id, ErrConflict)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM compartments WHERE id = $1`, c.ID); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "compartment", id, c.Version+1, c, true)
	})
	return pgErr("delete compartment "+id, err)
}

// History returns every recorded version of object id of kind ("node", "compartment", "tier").
func (s *Store) History(ctx context.Context, kind, id string) ([]map[string]any, error) {
	rows, err := s.pool.Query(ctx, `SELECT jsonb_build_object('version', version, 'deleted', deleted, 'changed_at', changed_at, 'data', data)
		FROM history WHERE kind = $1 AND id = $2 ORDER BY version`, kind, id)
	if err != nil {
		return nil, pgErr("history", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[map[string]any])
	return out, pgErr("history", err)
}

// NodeClaim is a node with what it last said of itself: the payload of its newest own
// observation (nil: none yet).
type NodeClaim struct {
	Node    enjin.NodeID
	State   string
	Payload []byte
}

// CompartmentClaims are the nodes in compartment id or any compartment below it, each with
// its newest own observation. An unknown compartment is ErrNotFound.
func (s *Store) CompartmentClaims(ctx context.Context, id string) ([]NodeClaim, error) {
	if _, err := s.GetCompartment(ctx, id); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE below(id) AS (
			SELECT $1::uuid UNION SELECT e.child FROM compartment_edges e JOIN below b ON e.parent = b.id)
		SELECT n.id, n.state, o.payload FROM nodes n JOIN below b ON n.compartment = b.id
		LEFT JOIN LATERAL (SELECT payload FROM node_observations
			WHERE node_id = n.id AND observer IS NULL ORDER BY seq DESC LIMIT 1) o ON true
		ORDER BY n.id`, id)
	if err != nil {
		return nil, pgErr("compartment claims", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (NodeClaim, error) {
		var c NodeClaim
		var node string
		err := r.Scan(&node, &c.State, &c.Payload)
		c.Node = enjin.NodeID(node)
		return c, err
	})
	return out, pgErr("compartment claims", err)
}
