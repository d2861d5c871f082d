package inventory

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// Network is a tenant's L2 segment: its VXLAN id (cloud-wide unique), its IPv4 block with the
// gateway address, an optional IPv6 /64, and whether its hosts answer DHCP. Two networks of a
// tenant never overlap; other tenants' may.
type Network struct {
	ID        string         `json:"id"`
	Tenant    enjin.TenantID `json:"tenant"`
	Name      string         `json:"name"`
	VNI       int            `json:"vni"`
	CIDR4     netip.Prefix   `json:"cidr4"`
	Gateway4  netip.Addr     `json:"gateway4"`
	Prefix6   netip.Prefix   `json:"prefix6,omitzero"`
	DHCP      bool           `json:"dhcp"`
	NAT       bool           `json:"nat"` // its ports reach beyond it through ring 1's NAT gateway
	Metadata  map[string]any `json:"metadata"`
	Version   int64          `json:"version"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

const networkCols = `n.id::text, n.tenant_id, n.name, n.vni, n.cidr4::text, host(n.gateway4), coalesce(n.prefix6::text, ''),
	n.dhcp, n.nat, n.metadata, n.version, n.created_at, n.updated_at`

func scanNetwork(r pgx.Row) (Network, error) {
	var n Network
	var tenant, cidr4, gw, p6 string
	if err := r.Scan(&n.ID, &tenant, &n.Name, &n.VNI, &cidr4, &gw, &p6, &n.DHCP, &n.NAT, &n.Metadata, &n.Version,
		&n.CreatedAt, &n.UpdatedAt); err != nil {
		return Network{}, err
	}
	n.Tenant = enjin.TenantID(tenant)
	n.CIDR4, _ = netip.ParsePrefix(cidr4)
	n.Gateway4, _ = netip.ParseAddr(gw)
	if p6 != "" {
		n.Prefix6, _ = netip.ParsePrefix(p6)
	}
	return n, nil
}

// CreateNetwork records n (its id, tenant, name, CIDR and options set by the caller) with the
// next free VNI. A zero Gateway4 is the block's first host address. A name the tenant already
// uses is ErrExists; a block overlapping another of the tenant's networks is ErrInvalid.
func (s *Store) CreateNetwork(ctx context.Context, n Network) (Network, error) {
	if !n.CIDR4.IsValid() || !n.CIDR4.Addr().Is4() {
		return Network{}, fmt.Errorf("inventory: network %s/%s: cidr4 %v: want an IPv4 block: %w", n.Tenant, n.Name, n.CIDR4, ErrInvalid)
	}
	n.CIDR4 = n.CIDR4.Masked()
	if !n.Gateway4.IsValid() {
		n.Gateway4 = n.CIDR4.Addr().Next()
	}
	if n.Metadata == nil {
		n.Metadata = map[string]any{}
	}
	var p6 *string
	if n.Prefix6.IsValid() {
		v := n.Prefix6.Masked().String()
		p6 = &v
	}
	var out Network
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = scanNetwork(tx.QueryRow(ctx, `INSERT INTO networks AS n (id, tenant_id, name, vni, cidr4, gateway4, prefix6, dhcp, nat, metadata)
			VALUES ($1, $2, $3, nextval('networks_vni'), $4, $5, $6, $7, $8, $9) RETURNING `+networkCols,
			n.ID, string(n.Tenant), n.Name, n.CIDR4.String(), n.Gateway4.String(), p6, n.DHCP, n.NAT, n.Metadata))
		if err != nil {
			return err
		}
		return recordHistory(ctx, tx, "network", out.ID, out.Version, out, false)
	})
	return out, pgErr("create network "+string(n.Tenant)+"/"+n.Name, err)
}

// GetNetwork returns tenant's network name.
func (s *Store) GetNetwork(ctx context.Context, tenant enjin.TenantID, name string) (Network, error) {
	n, err := scanNetwork(s.pool.QueryRow(ctx, `SELECT `+networkCols+` FROM networks n WHERE n.tenant_id = $1 AND n.name = $2`,
		string(tenant), name))
	return n, pgErr("network "+string(tenant)+"/"+name, err)
}

// ListNetworks lists tenant's networks, or every network if tenant is "", by name.
func (s *Store) ListNetworks(ctx context.Context, tenant enjin.TenantID) ([]Network, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+networkCols+` FROM networks n WHERE $1 = '' OR n.tenant_id = $1
		ORDER BY n.tenant_id, n.name`, string(tenant))
	if err != nil {
		return nil, pgErr("networks", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Network, error) { return scanNetwork(r) })
	return out, pgErr("networks", err)
}

// DeleteNetwork deletes tenant's network name if its version is still version; one that still
// has ports is ErrInUse.
func (s *Store) DeleteNetwork(ctx context.Context, tenant enjin.TenantID, name string, version int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		n, err := scanNetwork(tx.QueryRow(ctx, `SELECT `+networkCols+` FROM networks n WHERE n.tenant_id = $1 AND n.name = $2 FOR UPDATE`,
			string(tenant), name))
		if err != nil {
			return err
		}
		if n.Version != version {
			return fmt.Errorf("network %s/%s: %w", tenant, name, ErrConflict)
		}
		var ports int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM ports WHERE network_id = $1`, n.ID).Scan(&ports); err != nil {
			return err
		}
		if ports > 0 {
			return fmt.Errorf("network %s/%s has %d ports: %w", tenant, name, ports, ErrInUse)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM networks WHERE id = $1`, n.ID); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "network", n.ID, n.Version+1, n, true)
	})
	return wrapErr("delete network "+string(tenant)+"/"+name, err)
}
