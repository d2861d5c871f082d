package inventory

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// Ruleset is a tenant's firewall rule set: ordered rules that the NICs naming it enforce.
type Ruleset struct {
	ID        string         `json:"id"`
	Tenant    enjin.TenantID `json:"tenant"`
	Name      string         `json:"name"`
	Rules     []enjin.Rule   `json:"rules"`
	Version   int64          `json:"version"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

const rulesetCols = `r.id::text, r.tenant_id, r.name, r.rules, r.version, r.created_at, r.updated_at`

func scanRuleset(row pgx.Row) (Ruleset, error) {
	var r Ruleset
	var tenant string
	if err := row.Scan(&r.ID, &tenant, &r.Name, &r.Rules, &r.Version, &r.CreatedAt, &r.UpdatedAt); err != nil {
		return Ruleset{}, err
	}
	r.Tenant = enjin.TenantID(tenant)
	if r.Rules == nil {
		r.Rules = []enjin.Rule{}
	}
	return r, nil
}

// CreateRuleset records r; a name the tenant already uses is ErrExists.
func (s *Store) CreateRuleset(ctx context.Context, r Ruleset) (Ruleset, error) {
	if r.Rules == nil {
		r.Rules = []enjin.Rule{}
	}
	var out Ruleset
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = scanRuleset(tx.QueryRow(ctx, `INSERT INTO rulesets AS r (id, tenant_id, name, rules) VALUES ($1, $2, $3, $4)
			RETURNING `+rulesetCols, r.ID, string(r.Tenant), r.Name, r.Rules))
		if err != nil {
			return err
		}
		return recordHistory(ctx, tx, "ruleset", out.ID, out.Version, out, false)
	})
	return out, pgErr("create ruleset "+string(r.Tenant)+"/"+r.Name, err)
}

// GetRuleset returns tenant's rule set name.
func (s *Store) GetRuleset(ctx context.Context, tenant enjin.TenantID, name string) (Ruleset, error) {
	r, err := scanRuleset(s.pool.QueryRow(ctx, `SELECT `+rulesetCols+` FROM rulesets r WHERE r.tenant_id = $1 AND r.name = $2`,
		string(tenant), name))
	return r, pgErr("ruleset "+string(tenant)+"/"+name, err)
}

// ListRulesets lists tenant's rule sets by name.
func (s *Store) ListRulesets(ctx context.Context, tenant enjin.TenantID) ([]Ruleset, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+rulesetCols+` FROM rulesets r WHERE r.tenant_id = $1 ORDER BY r.name`, string(tenant))
	if err != nil {
		return nil, pgErr("rulesets", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Ruleset, error) { return scanRuleset(r) })
	return out, pgErr("rulesets", err)
}

// UpdateRuleset replaces the rules of tenant's rule set name if its version is still version.
func (s *Store) UpdateRuleset(ctx context.Context, tenant enjin.TenantID, name string, rules []enjin.Rule, version int64) (Ruleset, error) {
	if rules == nil {
		rules = []enjin.Rule{}
	}
	var out Ruleset
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = scanRuleset(tx.QueryRow(ctx, `UPDATE rulesets AS r SET rules = $4, version = r.version + 1, updated_at = now()
			WHERE r.tenant_id = $1 AND r.name = $2 AND r.version = $3 RETURNING `+rulesetCols, string(tenant), name, version, rules))
		if err == pgx.ErrNoRows {
			if _, gerr := s.GetRuleset(ctx, tenant, name); gerr != nil {
				return gerr
			}
			return fmt.Errorf("ruleset %s/%s: %w", tenant, name, ErrConflict)
		}
		if err != nil {
			return err
		}
		return recordHistory(ctx, tx, "ruleset", out.ID, out.Version, out, false)
	})
	return out, wrapErr("update ruleset "+string(tenant)+"/"+name, err)
}

// DeleteRuleset deletes tenant's rule set name if its version is still version; one a VM's
// NIC names, a port enforces or another rule set's rule names as its remote is ErrInUse.
func (s *Store) DeleteRuleset(ctx context.Context, tenant enjin.TenantID, name string, version int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		r, err := scanRuleset(tx.QueryRow(ctx, `SELECT `+rulesetCols+` FROM rulesets r WHERE r.tenant_id = $1 AND r.name = $2 FOR UPDATE`,
			string(tenant), name))
		if err != nil {
			return err
		}
		if r.Version != version {
			return fmt.Errorf("ruleset %s/%s: %w", tenant, name, ErrConflict)
		}
		var users []string
		if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(v.name ORDER BY v.name), '{}') FROM vms v
			WHERE v.tenant_id = $1 AND EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(v.spec->'nics', '[]')) n
				WHERE coalesce(n->'rulesets', '[]') ? $2)`, string(tenant), name).Scan(&users); err != nil {
			return err
		}
		if len(users) > 0 {
			return fmt.Errorf("ruleset %s/%s is on NICs of %v: %w", tenant, name, users, ErrInUse)
		}
		var ports int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM ports WHERE tenant_id = $1 AND rulesets @> ARRAY[$2]::text[]`,
			string(tenant), name).Scan(&ports); err != nil {
			return err
		}
		if ports > 0 {
			return fmt.Errorf("ruleset %s/%s is enforced by %d ports (app instances'): %w", tenant, name, ports, ErrInUse)
		}
		var refs []string
		if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(name ORDER BY name), '{}') FROM rulesets
			WHERE tenant_id = $1 AND name <> $2 AND rules @> jsonb_build_array(jsonb_build_object('remote_ruleset', $2::text))`,
			string(tenant), name).Scan(&refs); err != nil {
			return err
		}
		if len(refs) > 0 {
			return fmt.Errorf("ruleset %s/%s is the remote of rules of %v: %w", tenant, name, refs, ErrInUse)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM rulesets WHERE id = $1`, r.ID); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "ruleset", r.ID, r.Version+1, r, true)
	})
	return wrapErr("delete ruleset "+string(tenant)+"/"+name, err)
}
