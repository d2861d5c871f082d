package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// Node is a node record: who it is, how it is run and observed, its keys, and what is known
// of its state.
type Node struct {
	ID            enjin.NodeID   `json:"id"`
	Ring          enjin.Ring     `json:"ring"`
	Label         string         `json:"label"`
	Supervision   string         `json:"supervision_strategy"`
	Observation   string         `json:"observation_strategy"`
	Compartment   string         `json:"compartment,omitempty"`
	ParentNode    string         `json:"parent_node,omitempty"`
	AuthPub       string         `json:"auth_pub,omitempty"`
	AttestPub     string         `json:"attest_pub,omitempty"`
	DesiredState  string         `json:"desired_state"`
	ObservedState string         `json:"observed_state"`
	State         string         `json:"state"`
	LastSeq       uint64         `json:"last_seq"`
	LastObsTs     *time.Time     `json:"last_observation_ts,omitempty"` // the node's clock
	LastObsAt     *time.Time     `json:"last_observation_at,omitempty"` // ring 0's clock
	Metadata      map[string]any `json:"metadata"`
	Version       int64          `json:"version"`
	Tiers         []NodeTier     `json:"tiers"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
}

// NodeTier is a node's role in a tier.
type NodeTier struct {
	Tier  string `json:"tier"`
	Role  string `json:"role"`
	Epoch int64  `json:"epoch"`
}

const nodeCols = `n.id, n.ring, n.label, n.supervision_strategy, n.observation_strategy,
	coalesce(n.compartment::text, ''), coalesce(n.parent_node, ''), n.auth_pub, n.attest_pub,
	n.desired_state, n.observed_state, n.state, coalesce(l.seq, n.last_seq), coalesce(l.ts_ns, n.last_obs_ts),
	coalesce(l.received_at, n.last_obs_at), n.metadata, n.version, n.created_at, n.updated_at,
	coalesce((SELECT jsonb_agg(jsonb_build_object('tier', t.tier_id, 'role', t.role, 'epoch', t.epoch) ORDER BY t.tier_id)
		FROM node_tiers t WHERE t.node_id = n.id), '[]')`

// nodeFrom is the nodes row n with l, its newest stored observation from the row's own
// mark (last_seq) on, if any: ingest writes the row only when the node's state changes or its
// mark is a minute old (see markEvery), so the latest is read from node_observations. A
// decommissioned node's mark stays where it was.
const nodeFrom = `nodes n LEFT JOIN LATERAL (SELECT o.seq, o.ts_ns, o.received_at, o.sig FROM node_observations o
	WHERE o.node_id = n.id AND o.seq >= n.last_seq AND n.state <> 'decommissioned'
	ORDER BY o.seq DESC LIMIT 1) l ON true`

func scanNode(r pgx.Row) (Node, error) {
	var n Node
	var id string
	var seq int64
	var ts *int64
	var tiers []byte
	err := r.Scan(&id, &n.Ring, &n.Label, &n.Supervision, &n.Observation, &n.Compartment, &n.ParentNode,
		&n.AuthPub, &n.AttestPub, &n.DesiredState, &n.ObservedState, &n.State, &seq, &ts, &n.LastObsAt,
		&n.Metadata, &n.Version, &n.CreatedAt, &n.UpdatedAt, &tiers)
	if err != nil {
		return n, err
	}
	n.ID, n.LastSeq = enjin.NodeID(id), uint64(seq)
	if ts != nil {
		t := time.Unix(0, *ts).UTC()
		n.LastObsTs = &t
	}
	if err := json.Unmarshal(tiers, &n.Tiers); err != nil {
		return n, err
	}
	return n, nil
}

const insertNode = `INSERT INTO nodes AS n (id, ring, label, supervision_strategy, observation_strategy,
		compartment, parent_node, auth_pub, attest_pub, metadata)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`

const upsertNode = ` ON CONFLICT (id) DO UPDATE SET ring = excluded.ring, label = excluded.label,
		supervision_strategy = excluded.supervision_strategy, observation_strategy = excluded.observation_strategy,
		compartment = coalesce(excluded.compartment, n.compartment), parent_node = coalesce(excluded.parent_node, n.parent_node),
		auth_pub = excluded.auth_pub, attest_pub = excluded.attest_pub,
		state = CASE n.state WHEN 'decommissioned' THEN 'unknown' ELSE n.state END,
		desired_state = CASE n.state WHEN 'decommissioned' THEN 'up' ELSE n.desired_state END,
		version = n.version + 1, updated_at = now()`

// RegisterNode creates node n, or updates its label, strategies and keys if it exists (a
// ring 1 node is registered, keys first, before it is started). Every attestation key is
// remembered, so observations signed with an earlier key stay verifiable. Registering a
// decommissioned node brings it back (state unknown): ring 0 was told to run it.
func (s *Store) RegisterNode(ctx context.Context, n Node) (Node, error) {
	return s.saveNode(ctx, n, true)
}

// CreateNode creates node n; an existing id is ErrExists.
func (s *Store) CreateNode(ctx context.Context, n Node) (Node, error) {
	return s.saveNode(ctx, n, false)
}

func (s *Store) saveNode(ctx context.Context, n Node, upsert bool) (Node, error) {
	if err := n.ID.Validate(); err != nil {
		return Node{}, fmt.Errorf("inventory: register: %w: %v", ErrInvalid, err)
	}
	if n.Metadata == nil {
		n.Metadata = map[string]any{}
	}
	var out Node
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var comp, parent any
		if n.Compartment != "" {
			comp = n.Compartment
		}
		if n.ParentNode != "" {
			parent = n.ParentNode
		}
		q := insertNode + ` ON CONFLICT (id) DO NOTHING`
		if upsert {
			q = insertNode + upsertNode
		}
		tag, err := tx.Exec(ctx, q,
			string(n.ID), n.Ring, n.Label, n.Supervision, n.Observation, comp, parent, n.AuthPub, n.AttestPub, n.Metadata)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("node %s: %w", n.ID, ErrExists)
		}
		if n.AttestPub != "" {
			if _, err := tx.Exec(ctx, `INSERT INTO node_keys (node_id, attest_pub) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
				string(n.ID), n.AttestPub); err != nil {
				return err
			}
		}
		if out, err = scanNode(tx.QueryRow(ctx, `SELECT `+nodeCols+` FROM `+nodeFrom+` WHERE n.id = $1`, string(n.ID))); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "node", string(out.ID), out.Version, out, false)
	})
	return out, pgErr("register node "+string(n.ID), err)
}

// GetNode returns node id with its tiers.
func (s *Store) GetNode(ctx context.Context, id enjin.NodeID) (Node, error) {
	n, err := scanNode(s.pool.QueryRow(ctx, `SELECT `+nodeCols+` FROM `+nodeFrom+` WHERE n.id = $1`, string(id)))
	return n, pgErr("node "+string(id), err)
}

// NodeFilter selects nodes; zero fields select everything.
type NodeFilter struct {
	Ring     *enjin.Ring
	State    string
	Metadata map[string]string // every key must have exactly this (string) value
	After    enjin.NodeID      // paging: ids greater than this
	Limit    int               // 0 means 1000
}

// ListNodes returns the nodes that match f, ordered by id.
func (s *Store) ListNodes(ctx context.Context, f NodeFilter) ([]Node, error) {
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 1000
	}
	var ring any
	if f.Ring != nil {
		ring = int(*f.Ring)
	}
	meta := map[string]string{}
	for k, v := range f.Metadata {
		meta[k] = v
	}
	rows, err := s.pool.Query(ctx, `SELECT `+nodeCols+` FROM `+nodeFrom+`
		WHERE ($1::int IS NULL OR n.ring = $1) AND ($2 = '' OR n.state = $2) AND n.metadata @> $3 AND n.id > $4
		ORDER BY n.id LIMIT $5`, ring, f.State, meta, string(f.After), f.Limit)
	if err != nil {
		return nil, pgErr("list nodes", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Node, error) { return scanNode(r) })
	return out, pgErr("list nodes", err)
}

// UpdateNode sets node id's label and metadata if its version is still version.
func (s *Store) UpdateNode(ctx context.Context, id enjin.NodeID, version int64, label *string, metadata map[string]any) (Node, error) {
	var out Node
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE nodes SET label = coalesce($3, label), metadata = coalesce($4, metadata),
			version = version + 1, updated_at = now() WHERE id = $1 AND version = $2`, string(id), version, label, metadata)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return missingOrStale(ctx, tx, "nodes", string(id))
		}
		if out, err = scanNode(tx.QueryRow(ctx, `SELECT `+nodeCols+` FROM `+nodeFrom+` WHERE n.id = $1`, string(id))); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "node", string(id), out.Version, out, false)
	})
	return out, pgErr("update node "+string(id), err)
}

// NodeKey is what the verifier needs to know of a node at start.
type NodeKey struct {
	Node      enjin.NodeID
	Ring      enjin.Ring
	AttestPub string
	LastSeq   uint64
	State     string
	LastObsAt *time.Time
	LastSig   []byte // the signature of the stored observation at LastSeq, if known (NodeKeys)
}

// NodeKeys lists every node with an attestation key, its high-water mark (with the stored
// observation's signature there) and liveness; a decommissioned node is not listed, so its
// observations stay refused after a restart.
func (s *Store) NodeKeys(ctx context.Context) ([]NodeKey, error) {
	return s.nodeKeys(ctx, true, `WHERE n.attest_pub <> '' AND n.state <> 'decommissioned'`)
}

// NodeLiveness is NodeKeys without the newest observations: LastSeq and LastObsAt are the
// nodes rows' own, up to markEvery behind. It is what a new leader judges liveness by (the
// node and its state), read in a quarter of NodeKeys' time at 100,000 nodes.
func (s *Store) NodeLiveness(ctx context.Context) ([]NodeKey, error) {
	return s.nodeKeys(ctx, false, `WHERE n.attest_pub <> '' AND n.state <> 'decommissioned'`)
}

// NodeKeyOf is NodeKeys for one node; ok is false if it has no key or is decommissioned.
func (s *Store) NodeKeyOf(ctx context.Context, id enjin.NodeID) (k NodeKey, ok bool, err error) {
	ks, err := s.nodeKeys(ctx, true, `WHERE n.id = $1 AND n.attest_pub <> '' AND n.state <> 'decommissioned'`, string(id))
	if err != nil || len(ks) == 0 {
		return NodeKey{}, false, err
	}
	return ks[0], true, nil
}

func (s *Store) nodeKeys(ctx context.Context, latest bool, where string, args ...any) ([]NodeKey, error) {
	marks := `n.last_seq, n.state, n.last_obs_at, NULL::bytea FROM nodes n `
	if latest {
		marks = `coalesce(l.seq, n.last_seq), n.state, coalesce(l.received_at, n.last_obs_at), l.sig FROM ` + nodeFrom + ` `
	}
	rows, err := s.pool.Query(ctx, `SELECT n.id, n.ring, n.attest_pub, `+marks+where, args...)
	if err != nil {
		return nil, pgErr("node keys", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (NodeKey, error) {
		var k NodeKey
		var id string
		var seq int64
		err := r.Scan(&id, &k.Ring, &k.AttestPub, &seq, &k.State, &k.LastObsAt, &k.LastSig)
		k.Node, k.LastSeq = enjin.NodeID(id), uint64(seq)
		return k, err
	})
	return out, pgErr("node keys", err)
}

// AttestationKeys lists every attestation key node has had.
func (s *Store) AttestationKeys(ctx context.Context, node enjin.NodeID) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT attest_pub FROM node_keys WHERE node_id = $1 ORDER BY registered_at`, string(node))
	if err != nil {
		return nil, pgErr("attestation keys", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, pgErr("attestation keys", err)
}

// SetStates sets the judged state of the given nodes (liveness: suspect, down), skipping
// nodes already in it and decommissioned ones, and returns how many changed. Judging is the
// leader's work: epoch is its lease's, and a deposed leader's verdict fails with ErrFenced.
func (s *Store) SetStates(ctx context.Context, epoch int64, ids []enjin.NodeID, state string) (int64, error) {
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = string(id)
	}
	var n int64
	err := retryDeadlock(ctx, func() error {
		return s.fenced(ctx, epoch, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `UPDATE nodes SET state = $2 WHERE id = ANY($1) AND state <> $2 AND state <> 'decommissioned'`, strs, state)
			n = tag.RowsAffected()
			return err
		})
	})
	if err != nil {
		return 0, pgErr("set states", err)
	}
	return n, nil
}

// missingOrStale tells apart a row that does not exist from one whose version moved on.
func missingOrStale(ctx context.Context, tx pgx.Tx, table, id string) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE id::text = $1)`, id).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("%s %s: %w", table, id, ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", table, id, ErrConflict)
}

func recordHistory(ctx context.Context, tx pgx.Tx, kind, id string, version int64, data any, deleted bool) error {
	_, err := tx.Exec(ctx, `INSERT INTO history (kind, id, version, data, deleted) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT DO NOTHING`, kind, id, version, data, deleted)
	return err
}

// RegisterNodes creates many nodes at once (benchmarks and fleet imports); existing ids are
// left alone. Only id, ring, label, strategies and keys are taken from each node.
func (s *Store) RegisterNodes(ctx context.Context, ns []Node) error {
	ids, ringsCol, labels, sup, obs := make([]string, len(ns)), make([]int16, len(ns)), make([]string, len(ns)), make([]string, len(ns)), make([]string, len(ns))
	auth, att := make([]string, len(ns)), make([]string, len(ns))
	for i, n := range ns {
		if err := n.ID.Validate(); err != nil {
			return fmt.Errorf("inventory: register nodes: %w: %v", ErrInvalid, err)
		}
		ids[i], ringsCol[i], labels[i], sup[i], obs[i], auth[i], att[i] = string(n.ID), int16(n.Ring), n.Label, n.Supervision, n.Observation, n.AuthPub, n.AttestPub
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO nodes (id, ring, label, supervision_strategy, observation_strategy, auth_pub, attest_pub)
			SELECT * FROM unnest($1::text[], $2::smallint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
			ON CONFLICT (id) DO NOTHING`, ids, ringsCol, labels, sup, obs, auth, att)
		b.Queue(`INSERT INTO node_keys (node_id, attest_pub) SELECT * FROM unnest($1::text[], $2::text[]) AS k (id, pub)
			WHERE pub <> '' ON CONFLICT DO NOTHING`, ids, att)
		return tx.SendBatch(ctx, b).Close()
	})
	return pgErr("register nodes", err)
}

// NodeStates counts the nodes in each state ring 0 judged them in (decommissioned ones too).
func (s *Store) NodeStates(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM nodes GROUP BY state`)
	if err != nil {
		return nil, pgErr("node states", err)
	}
	out := map[string]int64{}
	var state string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&state, &n}, func() error { out[state] = n; return nil })
	return out, pgErr("node states", err)
}
