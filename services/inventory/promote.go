package inventory

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// Promotion is what a promotion did.
type Promotion struct {
	Tier       Tier         `json:"tier"`
	Failed     enjin.NodeID `json:"failed,omitempty"`      // the primary taken out
	Primary    enjin.NodeID `json:"primary"`               // the replica promoted
	NewReplica enjin.NodeID `json:"new_replica,omitempty"` // the node placed to keep the replica count
	Epoch      int64        `json:"epoch"`                 // the new fencing epoch
}

// Promote replaces tier's primary in one transaction: the failed primary (which must still be
// the primary, if named — otherwise another promotion won and this one answers ErrConflict)
// leaves the tier, a replica becomes primary — preferring one in the failed primary's
// compartment, then one that is up — every member moves to a new fencing epoch, and a new
// replica is placed to keep the tier's replica count, preferring compartments the tier does
// not use yet.
func (s *Store) Promote(ctx context.Context, tier string, failed enjin.NodeID) (Promotion, error) {
	var p Promotion
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) (err error) {
		p, err = promote(ctx, tx, tier, failed)
		return err
	})
	return p, pgErr("promote tier "+tier, err)
}

// PromoteFenced is Promote as the leader's singleton work: refused with ErrFenced unless
// epoch is still the leader's.
func (s *Store) PromoteFenced(ctx context.Context, epoch int64, tier string, failed enjin.NodeID) (Promotion, error) {
	var p Promotion
	err := s.fenced(ctx, epoch, func(tx pgx.Tx) (err error) {
		p, err = promote(ctx, tx, tier, failed)
		return err
	})
	return p, pgErr("promote tier "+tier, err)
}

// PrimaryTiers lists the tiers each of nodes is the primary of.
func (s *Store) PrimaryTiers(ctx context.Context, nodes []enjin.NodeID) (map[enjin.NodeID][]string, error) {
	strs := make([]string, len(nodes))
	for i, n := range nodes {
		strs[i] = string(n)
	}
	rows, err := s.pool.Query(ctx, `SELECT node_id, tier_id::text FROM node_tiers WHERE role = 'primary' AND node_id = ANY($1) ORDER BY tier_id`, strs)
	if err != nil {
		return nil, pgErr("primary tiers", err)
	}
	defer rows.Close()
	out := map[enjin.NodeID][]string{}
	for rows.Next() {
		var node, tier string
		if err := rows.Scan(&node, &tier); err != nil {
			return nil, pgErr("primary tiers", err)
		}
		out[enjin.NodeID(node)] = append(out[enjin.NodeID(node)], tier)
	}
	return out, pgErr("primary tiers", rows.Err())
}

func promote(ctx context.Context, tx pgx.Tx, tier string, failed enjin.NodeID) (Promotion, error) {
	var p Promotion
	t, err := lockTier(ctx, tx, tier)
	if err != nil {
		return p, err
	}
	var primary *Member
	var replicas []Member
	epoch := int64(0)
	for i, m := range t.Members {
		epoch = max(epoch, m.Epoch)
		if m.Role == "primary" {
			primary = &t.Members[i]
		} else {
			replicas = append(replicas, m)
		}
	}
	if failed != "" && (primary == nil || primary.Node != failed) {
		return p, fmt.Errorf("tier %s: %s is not its primary (any more): %w", tier, failed, ErrConflict)
	}
	next := pickPrimary(replicas, primary)
	if next == nil {
		return p, fmt.Errorf("tier %s: no replica to promote: %w", tier, ErrInvalid)
	}
	epoch++
	p.Primary, p.Epoch = next.Node, epoch
	if primary != nil {
		p.Failed = primary.Node
		if _, err := tx.Exec(ctx, `DELETE FROM node_tiers WHERE tier_id = $1 AND node_id = $2`, t.ID, string(primary.Node)); err != nil {
			return p, err
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE node_tiers SET role = CASE WHEN node_id = $2 THEN 'primary' ELSE 'replica' END,
		epoch = $3 WHERE tier_id = $1`, t.ID, string(next.Node), epoch); err != nil {
		return p, err
	}
	if len(replicas)-1 < t.Replicas {
		if p.NewReplica, err = placeReplica(ctx, tx, t, p.Failed, epoch); err != nil {
			return p, err
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE tiers SET version = version + 1, updated_at = now() WHERE id = $1`, t.ID); err != nil {
		return p, err
	}
	return p, bumpedTier(ctx, tx, t.ID, &p.Tier, false)
}

// pickPrimary chooses the replica to promote: same compartment as the failed primary first,
// then nodes that are up, then the lowest id (so the choice is deterministic).
func pickPrimary(replicas []Member, failed *Member) *Member {
	rank := func(m Member) int {
		r := 0
		if failed == nil || failed.Compartment == "" || m.Compartment != failed.Compartment {
			r += 2
		}
		if m.State != "up" {
			r++
		}
		return r
	}
	var best *Member
	for i := range replicas {
		m := &replicas[i]
		if m.State == "down" {
			continue
		}
		if best == nil || rank(*m) < rank(*best) || rank(*m) == rank(*best) && m.Node < best.Node {
			best = m
		}
	}
	return best
}

// placeReplica adds an up node of the tier's ring that is not yet in it (and is not the
// failed primary), preferring compartments with the fewest members of the tier.
func placeReplica(ctx context.Context, tx pgx.Tx, t Tier, failed enjin.NodeID, epoch int64) (enjin.NodeID, error) {
	var node string
	err := tx.QueryRow(ctx, `SELECT n.id FROM nodes n
		WHERE n.ring = $2 AND n.state = 'up' AND n.id <> $3
			AND NOT EXISTS (SELECT 1 FROM node_tiers m WHERE m.tier_id = $1 AND m.node_id = n.id)
		ORDER BY (SELECT count(*) FROM node_tiers m JOIN nodes o ON o.id = m.node_id
			WHERE m.tier_id = $1 AND o.compartment IS NOT DISTINCT FROM n.compartment), n.id
		LIMIT 1`, t.ID, t.Ring, string(failed)).Scan(&node)
	if err == pgx.ErrNoRows {
		return "", nil // nothing to place: the tier runs short until a node is added
	}
	if err != nil {
		return "", err
	}
	_, err = tx.Exec(ctx, `INSERT INTO node_tiers (node_id, tier_id, role, epoch) VALUES ($1, $2, 'replica', $3)`, node, t.ID, epoch)
	return enjin.NodeID(node), err
}
