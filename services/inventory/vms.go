package inventory

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// MachineType is a size a VM comes in.
type MachineType struct {
	Name      string    `json:"name"`
	VCPUs     int       `json:"vcpus"`
	MemoryMB  int       `json:"memory_mb"`
	DiskGB    int       `json:"disk_gb"`
	CreatedAt time.Time `json:"created_at"`
}

// MachineTypes lists every machine type, smallest first.
func (s *Store) MachineTypes(ctx context.Context) ([]MachineType, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, vcpus, memory_mb, disk_gb, created_at FROM machine_types
		ORDER BY memory_mb, vcpus, name`)
	if err != nil {
		return nil, pgErr("machine types", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MachineType, error) {
		var m MachineType
		return m, r.Scan(&m.Name, &m.VCPUs, &m.MemoryMB, &m.DiskGB, &m.CreatedAt)
	})
	return out, pgErr("machine types", err)
}

// MachineType returns machine type name.
func (s *Store) MachineType(ctx context.Context, name string) (MachineType, error) {
	var m MachineType
	err := s.pool.QueryRow(ctx, `SELECT name, vcpus, memory_mb, disk_gb, created_at FROM machine_types WHERE name = $1`, name).
		Scan(&m.Name, &m.VCPUs, &m.MemoryMB, &m.DiskGB, &m.CreatedAt)
	return m, pgErr("machine type "+name, err)
}

// CreateMachineType records m; an existing name is ErrExists, sizes out of bounds ErrInvalid.
func (s *Store) CreateMachineType(ctx context.Context, m MachineType) (MachineType, error) {
	err := s.pool.QueryRow(ctx, `INSERT INTO machine_types (name, vcpus, memory_mb, disk_gb) VALUES ($1, $2, $3, $4)
		RETURNING created_at`, m.Name, m.VCPUs, m.MemoryMB, m.DiskGB).Scan(&m.CreatedAt)
	return m, pgErr("create machine type "+m.Name, err)
}

// VM is a tenant's virtual machine: what is wanted of it, where it runs and what its node
// last observed.
type VM struct {
	ID            string         `json:"id"` // a UUID: also its id as a ring 2 node
	Tenant        enjin.TenantID `json:"tenant"`
	Name          string         `json:"name"`
	Image         string         `json:"image"`
	MachineType   string         `json:"machine_type"`
	Node          enjin.NodeID   `json:"node"`
	DesiredState  string         `json:"desired_state"`  // running or stopped
	ObservedState string         `json:"observed_state"` // pending, running, stopped, crashed, …, as ring 1 says
	Addresses     []string       `json:"addresses"`      // its NICs' addresses, as ring 1 says
	Spec          VMSpec         `json:"spec"`
	Metadata      map[string]any `json:"metadata"`
	Version       int64          `json:"version"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
	// Bid is the signed bid its host won the placement with (opaque here: the bid as JSON);
	// written at create only, and served with the placements (GET /v1/placements).
	Bid []byte `json:"-"`
}

// VMSpec is what a VM is made with besides its image and size.
type VMSpec struct {
	Networks []string `json:"networks,omitempty"`
	NICs     []NIC    `json:"nics,omitempty"`
	SSHKeys  []string `json:"ssh_keys,omitempty"`
	UserData string   `json:"user_data,omitempty"`
}

// NIC is one network interface of a VM.
type NIC struct {
	MAC      string   `json:"mac"`
	Network  string   `json:"network"`
	Rulesets []string `json:"rulesets,omitempty"` // on a tenant network: the rule sets it enforces, in order
	Router   bool     `json:"router,omitempty"`   // on a tenant network: its router, the others' default route
}

const vmCols = `v.id::text, v.tenant_id, v.name, v.image, v.machine_type, v.node_id, v.desired_state, v.observed_state,
	v.addresses, v.spec, v.metadata, v.version, v.created_at, v.updated_at`

func scanVM(r pgx.Row) (VM, error) {
	var v VM
	var tenant, node string
	err := r.Scan(&v.ID, &tenant, &v.Name, &v.Image, &v.MachineType, &node, &v.DesiredState, &v.ObservedState,
		&v.Addresses, &v.Spec, &v.Metadata, &v.Version, &v.CreatedAt, &v.UpdatedAt)
	v.Tenant, v.Node = enjin.TenantID(tenant), enjin.NodeID(node)
	return v, err
}

// VMMemoryOn is the memory, in MiB, of every VM placed on node, running or stopped: a stopped
// VM keeps its place.
func (s *Store) VMMemoryOn(ctx context.Context, node enjin.NodeID) (int64, error) {
	var mb int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(m.memory_mb), 0) FROM vms v
		JOIN machine_types m ON m.name = v.machine_type WHERE v.node_id = $1`, string(node)).Scan(&mb)
	return mb, pgErr("vm memory on "+string(node), err)
}

// CreateVM records v (its id, tenant, name, image, machine type and node set by the caller);
// a name the tenant already uses is ErrExists.
func (s *Store) CreateVM(ctx context.Context, v VM) (VM, error) {
	if v.Metadata == nil {
		v.Metadata = map[string]any{}
	}
	var out VM
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = scanVM(tx.QueryRow(ctx, `INSERT INTO vms AS v (id, tenant_id, name, image, machine_type, node_id, spec, metadata, bid)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING `+vmCols,
			v.ID, string(v.Tenant), v.Name, v.Image, v.MachineType, string(v.Node), v.Spec, v.Metadata, v.Bid))
		if err != nil {
			return err
		}
		return recordHistory(ctx, tx, "vm", out.ID, out.Version, out, false)
	})
	return out, pgErr("create vm "+string(v.Tenant)+"/"+v.Name, err)
}

// GetVM returns tenant's VM name.
func (s *Store) GetVM(ctx context.Context, tenant enjin.TenantID, name string) (VM, error) {
	v, err := scanVM(s.pool.QueryRow(ctx, `SELECT `+vmCols+` FROM vms v WHERE v.tenant_id = $1 AND v.name = $2`, string(tenant), name))
	return v, pgErr("vm "+string(tenant)+"/"+name, err)
}

// ListVMs lists tenant's VMs, or every VM if tenant is "", by name.
func (s *Store) ListVMs(ctx context.Context, tenant enjin.TenantID) ([]VM, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+vmCols+` FROM vms v WHERE $1 = '' OR v.tenant_id = $1 ORDER BY v.tenant_id, v.name`, string(tenant))
	if err != nil {
		return nil, pgErr("vms", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (VM, error) { return scanVM(r) })
	return out, pgErr("vms", err)
}

// UpdateVM saves v's desired state and spec if its version is still v.Version (ErrConflict
// otherwise) and returns the new record.
func (s *Store) UpdateVM(ctx context.Context, v VM) (VM, error) {
	var out VM
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = scanVM(tx.QueryRow(ctx, `UPDATE vms AS v SET desired_state = $3, spec = $4, version = v.version + 1, updated_at = now()
			WHERE v.id = $1 AND v.version = $2 RETURNING `+vmCols, v.ID, v.Version, v.DesiredState, v.Spec))
		if err == pgx.ErrNoRows {
			return fmt.Errorf("vm %s/%s: %w", v.Tenant, v.Name, ErrConflict)
		}
		if err != nil {
			return err
		}
		return recordHistory(ctx, tx, "vm", out.ID, out.Version, out, false)
	})
	return out, pgErr("update vm "+string(v.Tenant)+"/"+v.Name, err)
}

// SetVMObserved records what the VM's node last observed of it: its state and, if addrs is
// not nil, its addresses (no new version: it is an observation, not a change anyone asked
// for).
func (s *Store) SetVMObserved(ctx context.Context, id, state string, addrs []string) error {
	_, err := s.pool.Exec(ctx, `UPDATE vms SET observed_state = $2, addresses = coalesce($3, addresses) WHERE id = $1`, id, state, addrs)
	return pgErr("vm "+id+" observed", err)
}

// DeleteVM deletes a VM record if its version is still version; its volumes are detached.
func (s *Store) DeleteVM(ctx context.Context, tenant enjin.TenantID, name string, version int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		v, err := scanVM(tx.QueryRow(ctx, `DELETE FROM vms v WHERE v.tenant_id = $1 AND v.name = $2 AND v.version = $3 RETURNING `+vmCols,
			string(tenant), name, version))
		if err == pgx.ErrNoRows {
			if _, gerr := s.GetVM(ctx, tenant, name); gerr != nil {
				return gerr
			}
			return fmt.Errorf("vm %s/%s: %w", tenant, name, ErrConflict)
		}
		if err != nil {
			return err
		}
		return recordHistory(ctx, tx, "vm", v.ID, v.Version+1, v, true)
	})
	return pgErr("delete vm "+string(tenant)+"/"+name, err)
}

// VMsOn lists the VMs placed on node (what a restarted ring 1 node should be running).
func (s *Store) VMsOn(ctx context.Context, node enjin.NodeID) ([]VM, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+vmCols+` FROM vms v WHERE v.node_id = $1 ORDER BY v.tenant_id, v.name`, string(node))
	if err != nil {
		return nil, pgErr("vms on "+string(node), err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (VM, error) { return scanVM(r) })
	return out, pgErr("vms on "+string(node), err)
}

// HostVMImagesOn are the images (by id, from their metadata's "image") that the ring 1 hosts
// run as VMs on node boot — ring 1 nodes of the libvirt strategy whose parent is node, not
// decommissioned.
func (s *Store) HostVMImagesOn(ctx context.Context, node enjin.NodeID) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT n.metadata->>'image' FROM nodes n WHERE n.parent_node = $1 AND n.ring = 1
		AND n.supervision_strategy = 'libvirt' AND n.state <> $2 AND n.metadata ? 'image'`, string(node), StateDecommissioned)
	if err != nil {
		return nil, pgErr("host vm images on "+string(node), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, pgErr("host vm images on "+string(node), err)
}
