package inventory

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// Replicas lists, by app, the hosts beside its home that run a share of its instances, in
// node order.
func (s *Store) Replicas(ctx context.Context) (map[AppKey][]enjin.NodeID, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, app, node_id FROM app_replicas ORDER BY 1, 2, 3`)
	if err != nil {
		return nil, pgErr("replicas", err)
	}
	out := map[AppKey][]enjin.NodeID{}
	var k AppKey
	var node enjin.NodeID
	_, err = pgx.ForEachRow(rows, []any{&k.Tenant, &k.App, &node}, func() error {
		out[k] = append(out[k], node)
		return nil
	})
	return out, pgErr("replicas", err)
}

// AddReplica has node, with the bid it signed, run a share of tenant's app beside the app's
// home, under the leader's fencing epoch (ErrFenced); an app not placed, or placed on node, is
// ErrConflict.
func (s *Store) AddReplica(ctx context.Context, epoch int64, tenant enjin.TenantID, app string, node enjin.NodeID, bid []byte) error {
	err := s.fenced(ctx, epoch, func(tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, `INSERT INTO app_replicas (tenant_id, app, node_id, bid)
			SELECT tenant_id, app, $3, $4 FROM app_hosts WHERE tenant_id = $1 AND app = $2 AND node_id <> $3
			ON CONFLICT (tenant_id, app, node_id) DO UPDATE SET bid = EXCLUDED.bid, placed_at = now()`,
			string(tenant), app, string(node), bid)
		if err == nil && ct.RowsAffected() == 0 {
			err = fmt.Errorf("inventory: app %s/%s is not placed, or placed on %s: %w", tenant, app, node, ErrConflict)
		}
		return err
	})
	return pgErr("replica of app "+string(tenant)+"/"+app, err)
}

// DropReplica ends node's share of tenant's app, under the leader's fencing epoch.
func (s *Store) DropReplica(ctx context.Context, epoch int64, tenant enjin.TenantID, app string, node enjin.NodeID) error {
	err := s.fenced(ctx, epoch, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM app_replicas WHERE tenant_id = $1 AND app = $2 AND node_id = $3`,
			string(tenant), app, string(node))
		return err
	})
	return pgErr("drop replica of app "+string(tenant)+"/"+app, err)
}

// AppReplicas lists the hosts beside its home that run a share of tenant's app, in node order.
func (s *Store) AppReplicas(ctx context.Context, tenant enjin.TenantID, app string) ([]enjin.NodeID, error) {
	rows, err := s.pool.Query(ctx, `SELECT node_id FROM app_replicas WHERE tenant_id = $1 AND app = $2 ORDER BY 1`, string(tenant), app)
	if err != nil {
		return nil, pgErr("replicas of app "+string(tenant)+"/"+app, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[enjin.NodeID])
	return out, pgErr("replicas of app "+string(tenant)+"/"+app, err)
}
