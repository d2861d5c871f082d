package inventory

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// AppRecipe is what ring 0 keeps of a placed app to run it elsewhere: the live release's
// package and its recipe (release, environment, scale), sealed by the caller.
type AppRecipe struct {
	Tenant  enjin.TenantID
	App     string
	Node    enjin.NodeID // the host it was read from
	Release int
	Digest  string
	Scale   map[string]int
	Sealed  []byte
	Package []byte // nil when read by RecipeHeads, or when PutRecipe keeps the package it has
}

// AppKey names an app.
type AppKey struct {
	Tenant enjin.TenantID
	App    string
}

// PutRecipe keeps r as its app's recipe; with no Package, the kept package stays (the live
// release's package is the one kept, its scale changed). An app no longer placed keeps none.
func (s *Store) PutRecipe(ctx context.Context, r AppRecipe) error {
	scale, err := json.Marshal(r.Scale)
	if err != nil {
		return err
	}
	if r.Package == nil {
		ct, err := s.pool.Exec(ctx, `UPDATE app_recipes SET node_id = $3, release = $4, digest = $5, scale = $6, sealed = $7, taken = now()
			WHERE tenant_id = $1 AND app = $2`, string(r.Tenant), r.App, string(r.Node), r.Release, r.Digest, scale, r.Sealed)
		if err == nil && ct.RowsAffected() == 0 {
			return fmt.Errorf("inventory: no package kept for app %s/%s: %w", r.Tenant, r.App, ErrNotFound)
		}
		return pgErr("update recipe of app "+string(r.Tenant)+"/"+r.App, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO app_recipes (tenant_id, app, node_id, release, digest, scale, sealed, package)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8 FROM app_hosts WHERE tenant_id = $1 AND app = $2
			ON CONFLICT (tenant_id, app) DO UPDATE SET node_id = $3, release = $4, digest = $5, scale = $6, sealed = $7, package = $8, taken = now()`,
		string(r.Tenant), r.App, string(r.Node), r.Release, r.Digest, scale, r.Sealed, r.Package)
	return pgErr("put recipe of app "+string(r.Tenant)+"/"+r.App, err)
}

// RecipeHeads are the kept recipes without their packages and seals, by app.
func (s *Store) RecipeHeads(ctx context.Context) (map[AppKey]AppRecipe, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, app, node_id, release, digest, scale FROM app_recipes`)
	if err != nil {
		return nil, pgErr("recipes", err)
	}
	out := map[AppKey]AppRecipe{}
	_, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (r AppRecipe, err error) {
		var scale []byte
		if err = row.Scan(&r.Tenant, &r.App, &r.Node, &r.Release, &r.Digest, &scale); err == nil {
			err = json.Unmarshal(scale, &r.Scale)
		}
		out[AppKey{r.Tenant, r.App}] = r
		return r, err
	})
	return out, pgErr("recipes", err)
}

// Recipe is the kept recipe of tenant's app, package and all (ErrNotFound: none kept).
func (s *Store) Recipe(ctx context.Context, tenant enjin.TenantID, app string) (AppRecipe, error) {
	r := AppRecipe{Tenant: tenant, App: app}
	var scale []byte
	err := s.pool.QueryRow(ctx, `SELECT node_id, release, digest, scale, sealed, package FROM app_recipes WHERE tenant_id = $1 AND app = $2`,
		string(tenant), app).Scan(&r.Node, &r.Release, &r.Digest, &scale, &r.Sealed, &r.Package)
	if err == nil {
		err = json.Unmarshal(scale, &r.Scale)
	}
	return r, pgErr("recipe of app "+string(tenant)+"/"+app, err)
}

// PlacedApp is an app's placement as re-placing reads it.
type PlacedApp struct {
	Tenant    enjin.TenantID
	App       string
	Node      enjin.NodeID
	MovedFrom enjin.NodeID // the host it was re-placed off, until Node has run it
}

// PlacedApps lists every app's placement, by tenant and name.
func (s *Store) PlacedApps(ctx context.Context) ([]PlacedApp, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, app, node_id, coalesce(moved_from, '') FROM app_hosts ORDER BY 1, 2`)
	if err != nil {
		return nil, pgErr("placed apps", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (p PlacedApp, err error) {
		return p, row.Scan(&p.Tenant, &p.App, &p.Node, &p.MovedFrom)
	})
	return out, pgErr("placed apps", err)
}

// MoveApp re-places tenant's app from node from, which went down, to node to (if it ran a
// share of the app, as a replica, it runs all of it now), with the bid to signed for it, under the leader's fencing epoch: a deposed leader's move is refused
// (ErrFenced), and so is a move of an app no longer on from (ErrConflict).
func (s *Store) MoveApp(ctx context.Context, epoch int64, tenant enjin.TenantID, app string, from, to enjin.NodeID, bid []byte) error {
	err := s.fenced(ctx, epoch, func(tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, `UPDATE app_hosts SET node_id = $4, bid = $5, moved_from = $3, placed_at = now()
			WHERE tenant_id = $1 AND app = $2 AND node_id = $3`, string(tenant), app, string(from), string(to), bid)
		if err == nil && ct.RowsAffected() == 0 {
			return fmt.Errorf("inventory: app %s/%s is not on %s: %w", tenant, app, from, ErrConflict)
		}
		if err == nil { // a replica that becomes the app's home is one no more
			_, err = tx.Exec(ctx, `DELETE FROM app_replicas WHERE tenant_id = $1 AND app = $2 AND node_id = $3`, string(tenant), app, string(to))
		}
		return err
	})
	return pgErr("move app "+string(tenant)+"/"+app, err)
}

// SettleMove records that node, where tenant's app was re-placed, runs it.
func (s *Store) SettleMove(ctx context.Context, tenant enjin.TenantID, app string, node enjin.NodeID) error {
	_, err := s.pool.Exec(ctx, `UPDATE app_hosts SET moved_from = NULL WHERE tenant_id = $1 AND app = $2 AND node_id = $3`,
		string(tenant), app, string(node))
	return pgErr("settle the move of app "+string(tenant)+"/"+app, err)
}

// AppHostStates are the judged states of the ring 1 nodes that host a tenant, or are among
// also (the nodes a ring 0 runs itself): the hosts apps run on or may move to — a few, where
// the nodes may be many.
func (s *Store) AppHostStates(ctx context.Context, also []enjin.NodeID) (map[enjin.NodeID]string, error) {
	ids := make([]string, len(also))
	for i, n := range also {
		ids[i] = string(n)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, state FROM nodes WHERE ring = 1 AND state <> 'decommissioned'
		AND (id = ANY($1) OR id IN (SELECT node_id FROM tenant_hosts))`, ids)
	if err != nil {
		return nil, pgErr("app hosts", err)
	}
	defer rows.Close()
	out := map[enjin.NodeID]string{}
	for rows.Next() {
		var id, state string
		if err := rows.Scan(&id, &state); err != nil {
			return nil, pgErr("app hosts", err)
		}
		out[enjin.NodeID(id)] = state
	}
	return out, pgErr("app hosts", rows.Err())
}
