package inventory

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// AppHost is the node tenant's app was placed on (ErrNotFound: not placed).
func (s *Store) AppHost(ctx context.Context, tenant enjin.TenantID, app string) (enjin.NodeID, error) {
	var node string
	err := s.pool.QueryRow(ctx, `SELECT node_id FROM app_hosts WHERE tenant_id = $1 AND app = $2`, string(tenant), app).Scan(&node)
	return enjin.NodeID(node), pgErr("app "+string(tenant)+"/"+app, err)
}

// PlaceApp places tenant's app on node, one of the tenant's hosts, with the winning bid
// node signed for it (opaque here: the bid as JSON), unless the app is placed already, and
// returns where it is: the first placement stands, however many race.
func (s *Store) PlaceApp(ctx context.Context, tenant enjin.TenantID, app string, node enjin.NodeID, bid []byte) (enjin.NodeID, error) {
	var placed string
	// On a conflict the no-op update returns the row that stands, also one committed by a
	// racing transaction after this statement began.
	err := s.pool.QueryRow(ctx, `INSERT INTO app_hosts (tenant_id, app, node_id, bid) VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant_id, app) DO UPDATE SET node_id = app_hosts.node_id RETURNING node_id`,
		string(tenant), app, string(node), bid).Scan(&placed)
	return enjin.NodeID(placed), pgErr("place app "+string(tenant)+"/"+app, err)
}

// Placement is where an app or a VM was placed, and the bid that won it.
type Placement struct {
	Kind     string          `json:"kind"` // app or vm
	Tenant   enjin.TenantID  `json:"tenant"`
	App      string          `json:"app"` // the app's name, or the VM's
	Node     enjin.NodeID    `json:"node"`
	PlacedAt time.Time       `json:"placed_at"`
	Bid      json.RawMessage `json:"bid"` // the signed bid; null for an app placed before bids
	// Apps only: the release ring 0 keeps to re-place the app with if its host goes down (0:
	// none kept yet), and the host it was re-placed off while the new one has yet to run it.
	KeptRelease int          `json:"kept_release,omitempty"`
	MovedFrom   enjin.NodeID `json:"moved_from,omitempty"`
	// Replica: a host beside the app's home running a share of its instances.
	Replica bool `json:"replica,omitempty"`
}

// Placements lists every app's and VM's placement, by tenant, kind and name (an app's home
// first, then its replicas by node).
func (s *Store) Placements(ctx context.Context) ([]Placement, error) {
	rows, err := s.pool.Query(ctx, `SELECT 'app', h.tenant_id, h.app, h.node_id, h.placed_at, h.bid, coalesce(r.release, 0), coalesce(h.moved_from, ''), false
		FROM app_hosts h LEFT JOIN app_recipes r USING (tenant_id, app)
		UNION ALL SELECT 'app', tenant_id, app, node_id, placed_at, bid, 0, '', true FROM app_replicas
		UNION ALL SELECT 'vm', tenant_id, name, node_id, created_at, bid, 0, '', false FROM vms
		ORDER BY 2, 1, 3, 9, 4`)
	if err != nil {
		return nil, pgErr("placements", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (p Placement, err error) {
		var bid []byte
		err = r.Scan(&p.Kind, &p.Tenant, &p.App, &p.Node, &p.PlacedAt, &bid, &p.KeptRelease, &p.MovedFrom, &p.Replica)
		if len(bid) > 0 && json.Valid(bid) {
			p.Bid = bid
		} else if len(bid) > 0 { // not JSON: shown as a string, for verify to refuse
			p.Bid, _ = json.Marshal(string(bid))
		}
		return p, err
	})
	return out, pgErr("placements", err)
}

// ForgetApp removes tenant's app's placement: it was destroyed.
func (s *Store) ForgetApp(ctx context.Context, tenant enjin.TenantID, app string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM app_hosts WHERE tenant_id = $1 AND app = $2`, string(tenant), app)
	return pgErr("forget app "+string(tenant)+"/"+app, err)
}

// AppsPlaced counts tenant's apps placed on each node.
func (s *Store) AppsPlaced(ctx context.Context, tenant enjin.TenantID) (map[enjin.NodeID]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT node_id, count(*) FROM app_hosts WHERE tenant_id = $1 GROUP BY node_id`, string(tenant))
	if err != nil {
		return nil, pgErr("apps placed", err)
	}
	defer rows.Close()
	out := map[enjin.NodeID]int{}
	for rows.Next() {
		var node string
		var n int
		if err := rows.Scan(&node, &n); err != nil {
			return nil, pgErr("apps placed", err)
		}
		out[enjin.NodeID(node)] = n
	}
	return out, pgErr("apps placed", rows.Err())
}
