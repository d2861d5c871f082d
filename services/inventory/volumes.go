package inventory

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// Volume is a tenant's disk that outlives the VMs it is attached to. It lives on one ring 1
// node; a VM using it runs there (the store refuses anything else).
type Volume struct {
	ID        string         `json:"id"`
	Tenant    enjin.TenantID `json:"tenant"`
	Name      string         `json:"name"`
	SizeGB    int            `json:"size_gb"`
	Node      enjin.NodeID   `json:"node"`
	VM        string         `json:"vm,omitempty"`      // the id of the VM it is attached to
	VMName    string         `json:"vm_name,omitempty"` // and that VM's name
	Metadata  map[string]any `json:"metadata"`
	Version   int64          `json:"version"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

const volumeCols = `o.id::text, o.tenant_id, o.name, o.size_gb, o.node_id, coalesce(o.vm_id::text, ''),
	coalesce((SELECT m.name FROM vms m WHERE m.id = o.vm_id), ''), o.metadata, o.version,
	o.created_at, o.updated_at`

func scanVolume(r pgx.Row) (Volume, error) {
	var v Volume
	var tenant, node string
	err := r.Scan(&v.ID, &tenant, &v.Name, &v.SizeGB, &node, &v.VM, &v.VMName, &v.Metadata, &v.Version, &v.CreatedAt, &v.UpdatedAt)
	v.Tenant, v.Node = enjin.TenantID(tenant), enjin.NodeID(node)
	return v, err
}

// CreateVolume records v (id, tenant, name, size and node set by the caller).
func (s *Store) CreateVolume(ctx context.Context, v Volume) (Volume, error) {
	if v.Metadata == nil {
		v.Metadata = map[string]any{}
	}
	var out Volume
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if out, err = scanVolume(tx.QueryRow(ctx, `INSERT INTO volumes AS o (id, tenant_id, name, size_gb, node_id, metadata)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+volumeCols, v.ID, string(v.Tenant), v.Name, v.SizeGB, string(v.Node), v.Metadata)); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "volume", out.ID, out.Version, out, false)
	})
	return out, pgErr("create volume "+string(v.Tenant)+"/"+v.Name, err)
}

// GetVolume returns tenant's volume name.
func (s *Store) GetVolume(ctx context.Context, tenant enjin.TenantID, name string) (Volume, error) {
	v, err := scanVolume(s.pool.QueryRow(ctx, `SELECT `+volumeCols+` FROM volumes o WHERE o.tenant_id = $1 AND o.name = $2`, string(tenant), name))
	return v, pgErr("volume "+string(tenant)+"/"+name, err)
}

// ListVolumes lists tenant's volumes, or every volume if tenant is "".
func (s *Store) ListVolumes(ctx context.Context, tenant enjin.TenantID) ([]Volume, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+volumeCols+` FROM volumes o WHERE $1 = '' OR o.tenant_id = $1 ORDER BY o.tenant_id, o.name`, string(tenant))
	if err != nil {
		return nil, pgErr("volumes", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Volume, error) { return scanVolume(r) })
	return out, pgErr("volumes", err)
}

// AttachVolume records volume v as attached to vm ("" detaches it) if its version is still
// v.Version. Attaching a volume that is attached elsewhere is ErrInUse; one on another node
// than the VM is ErrInvalid.
func (s *Store) AttachVolume(ctx context.Context, v Volume, vm string) (Volume, error) {
	var out Volume
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var cur string
		if err := tx.QueryRow(ctx, `SELECT coalesce(vm_id::text, '') FROM volumes WHERE id = $1 FOR UPDATE`, v.ID).Scan(&cur); err != nil {
			return err
		}
		if vm != "" && cur != "" && cur != vm {
			return fmt.Errorf("volume %s/%s is attached to another VM: %w", v.Tenant, v.Name, ErrInUse)
		}
		var vmID any
		if vm != "" {
			vmID = vm
		}
		var err error
		out, err = scanVolume(tx.QueryRow(ctx, `UPDATE volumes AS o SET vm_id = $3, version = o.version + 1, updated_at = now()
			WHERE o.id = $1 AND o.version = $2 RETURNING `+volumeCols, v.ID, v.Version, vmID))
		if err == pgx.ErrNoRows {
			return fmt.Errorf("volume %s/%s: %w", v.Tenant, v.Name, ErrConflict)
		}
		if err != nil {
			return err
		}
		return recordHistory(ctx, tx, "volume", out.ID, out.Version, out, false)
	})
	return out, pgErr("attach volume "+string(v.Tenant)+"/"+v.Name, err)
}

// DeleteVolume deletes a volume that is attached to no VM, if its version is still version.
func (s *Store) DeleteVolume(ctx context.Context, tenant enjin.TenantID, name string, version int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		v, err := scanVolume(tx.QueryRow(ctx, `SELECT `+volumeCols+` FROM volumes o WHERE o.tenant_id = $1 AND o.name = $2 FOR UPDATE`,
			string(tenant), name))
		if err != nil {
			return err
		}
		switch {
		case v.Version != version:
			return fmt.Errorf("volume %s/%s: %w", tenant, name, ErrConflict)
		case v.VM != "":
			return fmt.Errorf("volume %s/%s is attached to a VM: %w", tenant, name, ErrInUse)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM volumes WHERE id = $1`, v.ID); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "volume", v.ID, v.Version+1, v, true)
	})
	return pgErr("delete volume "+string(tenant)+"/"+name, err)
}

// VolumesOf lists the volumes attached to VM id.
func (s *Store) VolumesOf(ctx context.Context, vm string) ([]Volume, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+volumeCols+` FROM volumes o WHERE o.vm_id = $1 ORDER BY o.name`, vm)
	if err != nil {
		return nil, pgErr("volumes of "+vm, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Volume, error) { return scanVolume(r) })
	return out, pgErr("volumes of "+vm, err)
}
