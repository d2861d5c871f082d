package inventory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// Tenant is a customer of the platform: its own NATS account, its apps, its nodes.
type Tenant struct {
	ID        enjin.TenantID `json:"id"`
	Hosts     []TenantHost   `json:"hosts"`
	Metadata  map[string]any `json:"metadata"`
	Version   int64          `json:"version"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// TenantHost is a ring 1 node hosting a tenant, with the public half of the scoped signing
// key it mints the tenant's users with.
type TenantHost struct {
	Node      enjin.NodeID `json:"node"`
	ScopedPub string       `json:"scoped_key"`
}

const tenantCols = `t.id, coalesce((SELECT jsonb_agg(jsonb_build_object('node', h.node_id, 'scoped_key', h.scoped_pub) ORDER BY h.node_id)
		FROM tenant_hosts h WHERE h.tenant_id = t.id), '[]'), t.metadata, t.version, t.created_at, t.updated_at`

func scanTenant(r pgx.Row) (Tenant, error) {
	var t Tenant
	var id string
	err := r.Scan(&id, &t.Hosts, &t.Metadata, &t.Version, &t.CreatedAt, &t.UpdatedAt)
	t.ID = enjin.TenantID(id)
	return t, err
}

// CreateTenant records tenant t; an existing id is ErrExists.
func (s *Store) CreateTenant(ctx context.Context, t Tenant) (Tenant, error) {
	if err := t.ID.Validate(); err != nil {
		return Tenant{}, fmt.Errorf("inventory: tenant: %w: %v", ErrInvalid, err)
	}
	if t.Metadata == nil {
		t.Metadata = map[string]any{}
	}
	var out Tenant
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO tenants (id, metadata) VALUES ($1, $2)`, string(t.ID), t.Metadata); err != nil {
			return err
		}
		var err error
		if out, err = scanTenant(tx.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants t WHERE t.id = $1`, string(t.ID))); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "tenant", string(t.ID), out.Version, out, false)
	})
	return out, pgErr("create tenant "+string(t.ID), err)
}

// AddTenantHost records that node hosts tenant with scoped signing key scopedPub. A
// decommissioned node hosts nothing (ErrInvalid).
func (s *Store) AddTenantHost(ctx context.Context, tenant enjin.TenantID, node enjin.NodeID, scopedPub string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The share lock orders this against Decommission, which locks the row for update.
		var state string
		if err := tx.QueryRow(ctx, `SELECT state FROM nodes WHERE id = $1 FOR SHARE`, string(node)).Scan(&state); err != nil {
			return err
		}
		if state == StateDecommissioned {
			return fmt.Errorf("node %s is decommissioned: %w", node, ErrInvalid)
		}
		_, err := tx.Exec(ctx, `INSERT INTO tenant_hosts (tenant_id, node_id, scoped_pub) VALUES ($1, $2, $3)
			ON CONFLICT (tenant_id, node_id) DO UPDATE SET scoped_pub = excluded.scoped_pub`, string(tenant), string(node), scopedPub)
		return err
	})
	return pgErr("tenant host", err)
}

// GetTenant returns tenant id with its hosts.
func (s *Store) GetTenant(ctx context.Context, id enjin.TenantID) (Tenant, error) {
	t, err := scanTenant(s.pool.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants t WHERE t.id = $1`, string(id)))
	return t, pgErr("tenant "+string(id), err)
}

// ListTenants returns every tenant, by id.
func (s *Store) ListTenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tenantCols+` FROM tenants t ORDER BY t.id LIMIT 10000`)
	if err != nil {
		return nil, pgErr("list tenants", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Tenant, error) { return scanTenant(r) })
	return out, pgErr("list tenants", err)
}

// DeleteTenant deletes tenant id (and its hosts) if its version is still version.
func (s *Store) DeleteTenant(ctx context.Context, id enjin.TenantID, version int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE`, string(id)); err != nil {
			return err
		}
		t, err := scanTenant(tx.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants t WHERE t.id = $1`, string(id)))
		if err != nil {
			return err
		}
		if t.Version != version {
			return fmt.Errorf("tenant %s: %w", id, ErrConflict)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tenants WHERE id = $1`, string(id)); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "tenant", string(id), t.Version+1, t, true)
	})
	return pgErr("delete tenant "+string(id), err)
}

// TenantTokenPrefix starts every tenant token, so checkers can tell them from others.
const TenantTokenPrefix = "et_"

// CreateTenantToken issues a bearer token that speaks for tenant t (and only for it); only
// its hash is stored.
func (s *Store) CreateTenantToken(ctx context.Context, t enjin.TenantID, name string) (string, error) {
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	tok := TenantTokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	h := sha256.Sum256([]byte(tok))
	if _, err := s.pool.Exec(ctx, `INSERT INTO tenant_tokens (token_hash, tenant_id, name) VALUES ($1, $2, $3)`,
		h[:], string(t), name); err != nil {
		return "", pgErr("tenant token", err)
	}
	return tok, nil
}

// TenantForToken returns the tenant a token speaks for; ErrNotFound if none.
func (s *Store) TenantForToken(ctx context.Context, tok string) (enjin.TenantID, error) {
	h := sha256.Sum256([]byte(tok))
	var t string
	err := s.pool.QueryRow(ctx, `SELECT tenant_id FROM tenant_tokens WHERE token_hash = $1`, h[:]).Scan(&t)
	return enjin.TenantID(t), pgErr("tenant token", err)
}
