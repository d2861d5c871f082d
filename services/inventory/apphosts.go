package inventory

import (
	"context"

	"enjin/rings"
)

// AppHost is the node tenant's app was placed on (ErrNotFound: not placed).
func (s *Store) AppHost(ctx context.Context, tenant rings.TenantID, app string) (rings.NodeID, error) {
	var node string
	err := s.pool.QueryRow(ctx, `SELECT node_id FROM app_hosts WHERE tenant_id = $1 AND app = $2`, string(tenant), app).Scan(&node)
	return rings.NodeID(node), pgErr("app "+string(tenant)+"/"+app, err)
}

// PlaceApp places tenant's app on node, one of the tenant's hosts, unless it is placed
// already, and returns where it is: the first placement stands, however many race.
func (s *Store) PlaceApp(ctx context.Context, tenant rings.TenantID, app string, node rings.NodeID) (rings.NodeID, error) {
	var placed string
	// On a conflict the no-op update returns the row that stands, also one committed by a
	// racing transaction after this statement began.
	err := s.pool.QueryRow(ctx, `INSERT INTO app_hosts (tenant_id, app, node_id) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id, app) DO UPDATE SET node_id = app_hosts.node_id RETURNING node_id`,
		string(tenant), app, string(node)).Scan(&placed)
	return rings.NodeID(placed), pgErr("place app "+string(tenant)+"/"+app, err)
}

// ForgetApp removes tenant's app's placement: it was destroyed.
func (s *Store) ForgetApp(ctx context.Context, tenant rings.TenantID, app string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM app_hosts WHERE tenant_id = $1 AND app = $2`, string(tenant), app)
	return pgErr("forget app "+string(tenant)+"/"+app, err)
}

// AppsPlaced counts tenant's apps placed on each node.
func (s *Store) AppsPlaced(ctx context.Context, tenant rings.TenantID) (map[rings.NodeID]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT node_id, count(*) FROM app_hosts WHERE tenant_id = $1 GROUP BY node_id`, string(tenant))
	if err != nil {
		return nil, pgErr("apps placed", err)
	}
	defer rows.Close()
	out := map[rings.NodeID]int{}
	for rows.Next() {
		var node string
		var n int
		if err := rows.Scan(&node, &n); err != nil {
			return nil, pgErr("apps placed", err)
		}
		out[rings.NodeID(node)] = n
	}
	return out, pgErr("apps placed", rows.Err())
}
