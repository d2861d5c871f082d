package inventory

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// StateDecommissioned is the state of a node taken out of service for good. Nothing moves a
// node out of it but ring 0 registering the node again to run it itself (RegisterNode).
const StateDecommissioned = "decommissioned"

// Decommission marks ring 1 node id decommissioned if its version is still version, deleting
// its unused join tokens so none can be redeemed. A node hosting tenants is ErrInUse (delete
// them first); a node of another ring is ErrInvalid. Deciding again on a node already
// decommissioned changes nothing and succeeds, so a decommission whose revocations failed can
// be retried.
func (s *Store) Decommission(ctx context.Context, id enjin.NodeID, version int64) (Node, error) {
	var out Node
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The row lock orders this against AddTenantHost, which takes a share lock on it.
		n, err := scanNode(tx.QueryRow(ctx, `SELECT `+nodeCols+` FROM `+nodeFrom+` WHERE n.id = $1 FOR UPDATE OF n`, string(id)))
		if err != nil {
			return err
		}
		switch {
		case n.Version != version:
			return fmt.Errorf("node %s: %w", id, ErrConflict)
		case n.Ring != enjin.Ring1:
			return fmt.Errorf("node %s is in ring %d; only ring 1 nodes are decommissioned: %w", id, n.Ring, ErrInvalid)
		}
		rows, err := tx.Query(ctx, `SELECT tenant_id FROM tenant_hosts WHERE node_id = $1 ORDER BY tenant_id LIMIT 10`, string(id))
		if err != nil {
			return err
		}
		hosted, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(hosted) > 0 {
			return fmt.Errorf("%w: node %s hosts tenants %s; delete them first", ErrInUse, id, strings.Join(hosted, ", "))
		}
		if _, err := tx.Exec(ctx, `DELETE FROM join_tokens WHERE node_id = $1 AND used_at IS NULL`, string(id)); err != nil {
			return err
		}
		if n.State == StateDecommissioned {
			out = n
			return nil
		}
		// Its mark is kept in its row from now on (nodeFrom reads no later observation).
		var ts *int64
		if n.LastObsTs != nil {
			ns := n.LastObsTs.UnixNano()
			ts = &ns
		}
		if _, err := tx.Exec(ctx, `UPDATE nodes SET state = $2, desired_state = $2, version = version + 1, updated_at = now(),
				last_seq = $3, last_obs_ts = $4, last_obs_at = $5
			WHERE id = $1`, string(id), StateDecommissioned, int64(n.LastSeq), ts, n.LastObsAt); err != nil {
			return err
		}
		if out, err = scanNode(tx.QueryRow(ctx, `SELECT `+nodeCols+` FROM `+nodeFrom+` WHERE n.id = $1`, string(id))); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "node", string(id), out.Version, out, false)
	})
	return out, pgErr("decommission node "+string(id), err)
}

// LiveCredentialKeys lists the user public keys of node's credentials in account that are
// not marked revoked, oldest first.
func (s *Store) LiveCredentialKeys(ctx context.Context, node enjin.NodeID, account string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT subject FROM credentials WHERE node_id = $1 AND account = $2 AND revoked_at IS NULL
		GROUP BY subject ORDER BY min(issued_at)`, string(node), account)
	if err != nil {
		return nil, pgErr("credentials of "+string(node), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, pgErr("credentials of "+string(node), err)
}
