package inventory

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// Port is an endpoint on a network — a VM's NIC or an app instance's interface — with its MAC
// and the addresses ring 0 handed it. Owner says whose it is: "vm:<id>" or "app:<instance>".
type Port struct {
	ID        string         `json:"id"`
	Network   string         `json:"network_id"`
	Tenant    enjin.TenantID `json:"tenant"`
	MAC       string         `json:"mac"`
	Owner     string         `json:"owner"`
	Node      enjin.NodeID   `json:"node,omitempty"`
	Addresses []netip.Addr   `json:"addresses"`
	Rulesets  []string       `json:"rulesets,omitempty"` // the rule sets it enforces
	Router    bool           `json:"router,omitempty"`   // the network's router: the others' default route (one a network)
	CreatedAt time.Time      `json:"created_at"`
}

// CreatePort records p on its network with the addresses asked for (each a reservation: one
// already taken is ErrExists, one that is no host address of the network ErrInvalid) and, if
// none of them is IPv4, the network's lowest free IPv4 host address. Allocations on one network are one at a
// time (the network's row is locked); that no address is ever handed out twice is the
// schema's rule, whatever the callers do.
func (s *Store) CreatePort(ctx context.Context, p Port, want ...netip.Addr) (Port, error) {
	var node *string
	if p.Node != "" {
		v := string(p.Node)
		node = &v
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var tenant string
		if err := tx.QueryRow(ctx, `SELECT tenant_id FROM networks WHERE id = $1 FOR UPDATE`, p.Network).Scan(&tenant); err != nil {
			return err
		}
		if tenant != string(p.Tenant) {
			return fmt.Errorf("network %s is not %s's: %w", p.Network, p.Tenant, ErrInvalid)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO ports (id, network_id, tenant_id, mac, owner, node_id, rulesets, router)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING mac::text, created_at`,
			p.ID, p.Network, string(p.Tenant), p.MAC, p.Owner, node, nonNilStrings(p.Rulesets), p.Router).Scan(&p.MAC, &p.CreatedAt); err != nil {
			return err
		}
		if !slices.ContainsFunc(want, netip.Addr.Is4) {
			var a string
			// The lowest free address is the first host address or follows a taken one:
			// look only there, in the index, not through the whole block.
			err := tx.QueryRow(ctx, `WITH n AS (SELECT cidr4, gateway4 FROM networks WHERE id = $1),
				used AS (SELECT address FROM port_addresses WHERE network_id = $1 AND family(address) = 4
					UNION ALL SELECT gateway4 FROM n),
				cand AS (SELECT set_masklen(network(n.cidr4)::inet + 1, 32) AS a FROM n
					UNION SELECT u.address + 1 FROM used u)
				SELECT host(c.a) FROM cand c, n
				WHERE c.a << n.cidr4 AND host(c.a) <> host(broadcast(n.cidr4))
				AND NOT EXISTS (SELECT 1 FROM used u WHERE u.address = c.a)
				ORDER BY c.a LIMIT 1`, p.Network).Scan(&a)
			if err == pgx.ErrNoRows {
				return fmt.Errorf("network %s: no address left: %w", p.Network, ErrInUse)
			}
			if err != nil {
				return err
			}
			want = append([]netip.Addr{netip.MustParseAddr(a)}, want...)
		}
		p.Addresses = nil
		for _, a := range want {
			if _, err := tx.Exec(ctx, `INSERT INTO port_addresses (port_id, network_id, address) VALUES ($1, $2, $3)`,
				p.ID, p.Network, a.String()); err != nil {
				return err
			}
			p.Addresses = append(p.Addresses, a)
		}
		return nil
	})
	if err != nil {
		return Port{}, wrapErr("create port on network "+p.Network, err)
	}
	return p, nil
}

// wrapErr is pgErr for errors that may already carry one of the sentinels.
func wrapErr(what string, err error) error {
	for _, sentinel := range []error{ErrInvalid, ErrInUse, ErrConflict, ErrNotFound, ErrExists} {
		if errors.Is(err, sentinel) {
			return fmt.Errorf("inventory: %s: %w", what, err)
		}
	}
	return pgErr(what, err)
}

// PortsOf lists the ports of owner ("vm:<id>", "app:<instance>"), oldest first.
func (s *Store) PortsOf(ctx context.Context, owner string) ([]Port, error) {
	return s.ports(ctx, "ports of "+owner, `p.owner = $1`, owner)
}

// Routers lists tenant's router ports, one a network at most.
func (s *Store) Routers(ctx context.Context, tenant enjin.TenantID) ([]Port, error) {
	return s.ports(ctx, "routers of "+string(tenant), `p.tenant_id = $1 AND p.router`, string(tenant))
}

// PortsOn lists the ports on node whose owners begin with prefix ("app:", say), oldest first.
func (s *Store) PortsOn(ctx context.Context, node enjin.NodeID, prefix string) ([]Port, error) {
	return s.ports(ctx, "ports on "+string(node), `p.node_id = $1 AND starts_with(p.owner, $2)`, string(node), prefix)
}

func (s *Store) ports(ctx context.Context, what, where string, args ...any) ([]Port, error) {
	rows, err := s.pool.Query(ctx, `SELECT p.id::text, p.network_id::text, p.tenant_id, p.mac::text, p.owner,
		coalesce(p.node_id, ''), p.rulesets, p.router, p.created_at,
		coalesce((SELECT array_agg(host(a.address) ORDER BY a.address) FROM port_addresses a WHERE a.port_id = p.id), '{}')
		FROM ports p WHERE `+where+` ORDER BY p.created_at, p.id`, args...)
	if err != nil {
		return nil, pgErr(what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Port, error) {
		var p Port
		var tenant, node string
		var addrs []string
		if err := r.Scan(&p.ID, &p.Network, &tenant, &p.MAC, &p.Owner, &node, &p.Rulesets, &p.Router, &p.CreatedAt, &addrs); err != nil {
			return Port{}, err
		}
		p.Tenant, p.Node = enjin.TenantID(tenant), enjin.NodeID(node)
		for _, a := range addrs {
			if ip, err := netip.ParseAddr(a); err == nil {
				p.Addresses = append(p.Addresses, ip)
			}
		}
		return p, nil
	})
	return out, pgErr(what, err)
}

// SetPortRulesets records the rule sets port id enforces now.
func (s *Store) SetPortRulesets(ctx context.Context, id string, rulesets []string) error {
	_, err := s.pool.Exec(ctx, `UPDATE ports SET rulesets = $2 WHERE id = $1`, id, nonNilStrings(rulesets))
	return pgErr("rule sets of port "+id, err)
}

// RulesetMembers lists the addresses of tenant's ports that enforce rule set name.
func (s *Store) RulesetMembers(ctx context.Context, tenant enjin.TenantID, name string) ([]netip.Addr, error) {
	rows, err := s.pool.Query(ctx, `SELECT host(a.address) FROM ports p JOIN port_addresses a ON a.port_id = p.id
		WHERE p.tenant_id = $1 AND p.rulesets @> ARRAY[$2]::text[] ORDER BY a.address`, string(tenant), name)
	if err != nil {
		return nil, pgErr("members of rule set "+name, err)
	}
	strs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, pgErr("members of rule set "+name, err)
	}
	out := make([]netip.Addr, 0, len(strs))
	for _, a := range strs {
		if ip, err := netip.ParseAddr(a); err == nil {
			out = append(out, ip)
		}
	}
	return out, nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// DeletePort removes port id and releases its addresses; a port that is not there is not an
// error (releasing twice changes nothing).
func (s *Store) DeletePort(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM ports WHERE id = $1`, id)
	return pgErr("delete port "+id, err)
}

// NetworkNodes lists the nodes that hold ports on network id.
func (s *Store) NetworkNodes(ctx context.Context, id string) ([]enjin.NodeID, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT node_id FROM ports WHERE network_id = $1 AND node_id IS NOT NULL ORDER BY node_id`, id)
	if err != nil {
		return nil, pgErr("nodes of network "+id, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[enjin.NodeID])
	return out, pgErr("nodes of network "+id, err)
}

// CountPorts counts the ports on network id that node holds for owners starting with prefix
// ("vm:", "app:").
func (s *Store) CountPorts(ctx context.Context, id string, node enjin.NodeID, prefix string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM ports WHERE network_id = $1 AND node_id = $2 AND starts_with(owner, $3)`,
		id, string(node), prefix).Scan(&n)
	return n, pgErr("ports of network "+id, err)
}
