package vmhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"enjin"
	"enjin/supervisors/libvirt"
)

// Destroy destroys VM id of tenant t: its domain and the files made for it (its disk,
// metadata, console log), its addresses and its access to the relay; its identity is handed
// to Revoke. Its volumes stay. Destroying what is not there is not an error.
func (h *Host) Destroy(ctx context.Context, t enjin.TenantID, id enjin.NodeID) (enjin.VMStatus, error) {
	defer h.lock(id)()
	rec, ok := h.load(id)
	if ok && rec.Request.Tenant != t {
		return enjin.VMStatus{}, fmt.Errorf("vmhost: vm %s is another tenant's", id)
	}
	if err := h.cfg.Libvirt.Undefine(string(id)); err != nil && !errors.Is(err, libvirt.ErrNotFound) {
		return enjin.VMStatus{}, fmt.Errorf("vmhost: destroy %s: %w", id, err)
	}
	if ok {
		h.allow(rec, false)
		h.release(rec.Addresses...)
		var vnis []int
		for _, n := range rec.Request.NICs {
			if n.Segment != nil {
				h.leave(n)
				vnis = append(vnis, n.Segment.VNI)
			}
		}
		defer h.prune(vnis, id)
		if rec.UserPub != "" {
			h.cfg.Revoke(t, rec.UserPub)
		}
	}
	if err := os.RemoveAll(h.vmDir(id)); err != nil {
		return enjin.VMStatus{}, fmt.Errorf("vmhost: %w", err)
	}
	h.mu.Lock()
	delete(h.locks, id)
	h.mu.Unlock()
	h.log.Info("vm destroyed", "vm", id, "tenant", t)
	return enjin.VMStatus{ID: id, State: "destroyed"}, nil
}

// Reboot reboots a running VM of tenant t.
func (h *Host) Reboot(ctx context.Context, t enjin.TenantID, id enjin.NodeID) (enjin.VMStatus, error) {
	defer h.lock(id)()
	rec, ok := h.load(id)
	if !ok || rec.Request.Tenant != t {
		return enjin.VMStatus{}, fmt.Errorf("vmhost: vm %s: %w", id, libvirt.ErrNotFound)
	}
	if err := h.cfg.Libvirt.Reboot(string(id)); err != nil {
		return enjin.VMStatus{}, fmt.Errorf("vmhost: reboot %s: %w", id, err)
	}
	return h.status(rec), nil
}

// maxConsole is how much of a console log Console returns: its end.
const maxConsole = 64 << 10

// Console returns the last part of a VM's serial console log.
func (h *Host) Console(t enjin.TenantID, id enjin.NodeID) (string, error) {
	rec, ok := h.load(id)
	if !ok || rec.Request.Tenant != t {
		return "", fmt.Errorf("vmhost: vm %s: %w", id, libvirt.ErrNotFound)
	}
	path, err := h.cfg.Libvirt.ConsoleLog(string(id))
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("vmhost: %w", err)
	}
	if len(b) > maxConsole {
		b = b[len(b)-maxConsole:]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), nil
}

// ApplyVolume makes volume id's file (sizeGB, qcow2) if it is missing.
func (h *Host) ApplyVolume(ctx context.Context, id string, sizeGB int) error {
	if !enjin.IsUUID(id) || sizeGB < 1 || sizeGB > 16384 {
		return fmt.Errorf("vmhost: volume %q of %d GiB", id, sizeGB)
	}
	if _, err := os.Stat(h.volumePath(id)); err == nil {
		return nil
	}
	return libvirt.CreateVolume(ctx, h.volumePath(id), sizeGB)
}

// DeleteVolume deletes volume id's file; ring 0 asks only for a volume no VM has attached.
func (h *Host) DeleteVolume(id string) error {
	if !enjin.IsUUID(id) {
		return fmt.Errorf("vmhost: volume %q", id)
	}
	if err := os.Remove(h.volumePath(id)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("vmhost: %w", err)
	}
	return nil
}
