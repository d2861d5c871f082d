package vmhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"enjin/guest"
	"enjin/rings"
	"enjin/supervisors/libvirt"
)

// stopTimeout is how long a VM asked to stop gets to power off (ACPI) before it is forced.
const stopTimeout = 30 * time.Second

// Apply makes VM req.ID what req says: defined (its image fetched, its disk, addresses,
// identity and metadata made) the first time, its NICs and volumes added or removed (while it
// runs, hot-plugged), and running or stopped. Asking again for the same changes nothing.
func (h *Host) Apply(ctx context.Context, req rings.VMRequest) (rings.VMStatus, error) {
	if err := check(req); err != nil {
		return rings.VMStatus{}, err
	}
	defer h.lock(req.ID)()
	rec, defined := h.load(req.ID)
	if defined && rec.Request.Tenant != req.Tenant {
		return rings.VMStatus{}, fmt.Errorf("vmhost: vm %s is another tenant's", req.ID)
	}
	var err error
	if !defined {
		if h.exists(req.ID) { // a domain of that name this node has no record of: not ours to take
			return rings.VMStatus{}, fmt.Errorf("vmhost: a domain named %s exists without a record here; left alone", req.ID)
		}
		rec, err = h.define(ctx, req)
	} else {
		rec, err = h.change(rec, req)
	}
	if err != nil {
		return rings.VMStatus{}, err
	}
	name := string(req.ID)
	switch req.State {
	case rings.VMRunning:
		if err := h.cfg.Libvirt.Start(name); err != nil {
			return rings.VMStatus{}, fmt.Errorf("vmhost: start %s: %w", name, err)
		}
		h.allow(rec, true)
	case rings.VMStopped:
		if err := h.cfg.Libvirt.Shutdown(ctx, name, stopTimeout); err != nil && !errors.Is(err, libvirt.ErrNotFound) {
			return rings.VMStatus{}, fmt.Errorf("vmhost: stop %s: %w", name, err)
		}
		h.allow(rec, false)
	}
	return h.status(rec), nil
}

// exists reports whether libvirt has a domain named id (of enjin's, any node's).
func (h *Host) exists(id rings.NodeID) bool {
	infos, err := h.cfg.Libvirt.List()
	if err != nil {
		return false
	}
	for _, in := range infos {
		if in.Name == string(id) {
			return true
		}
	}
	return false
}

// check refuses a request vmhost could not carry out safely whatever the node's state.
func check(req rings.VMRequest) error {
	switch {
	case !rings.IsUUID(string(req.ID)):
		return fmt.Errorf("vmhost: vm id %q: want a UUID", req.ID)
	case req.Tenant.Validate() != nil:
		return fmt.Errorf("vmhost: vm %s: tenant %q", req.ID, req.Tenant)
	case req.VCPUs < 1 || req.VCPUs > 64 || req.MemoryMB < 64 || req.MemoryMB > 1<<20 || req.DiskGB < 1 || req.DiskGB > 16384:
		return fmt.Errorf("vmhost: vm %s: sizes out of bounds", req.ID)
	case req.State != rings.VMRunning && req.State != rings.VMStopped:
		return fmt.Errorf("vmhost: vm %s: state %q", req.ID, req.State)
	case len(req.NICs) == 0 || len(req.NICs) > 8 || len(req.Volumes) > 16:
		return fmt.Errorf("vmhost: vm %s: 1–8 NICs and at most 16 volumes", req.ID)
	}
	for _, v := range req.Volumes {
		if !rings.IsUUID(v.ID) {
			return fmt.Errorf("vmhost: vm %s: volume id %q", req.ID, v.ID)
		}
	}
	return nil
}

// define makes a new VM: its directory, disk, addresses, identity, metadata and domain.
func (h *Host) define(ctx context.Context, req rings.VMRequest) (rec record, err error) {
	dir := h.vmDir(req.ID)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return rec, fmt.Errorf("vmhost: %w", err)
	}
	rec = record{Request: req}
	defer func() {
		if err != nil { // nothing of a VM that could not be made stays
			for _, a := range rec.Addresses {
				h.cfg.Network.Release(a)
			}
			os.RemoveAll(dir)
		}
	}()
	disk, kernel, initrd, err := h.cached(ctx, req.Image)
	if err != nil {
		return rec, err
	}
	d := libvirt.Domain{Name: string(req.ID), UUID: string(req.ID), KVM: libvirt.HasKVM(), VCPUs: uint(req.VCPUs),
		MemoryMiB: uint(req.MemoryMB), ConsoleLog: filepath.Join(dir, "console.log"),
		Meta: libvirt.Meta{Tenant: req.Tenant, VM: req.Name, Node: h.cfg.Node}}
	if disk != "" {
		root := filepath.Join(dir, "disk.qcow2")
		if err := libvirt.Overlay(ctx, disk, root, req.DiskGB); err != nil {
			return rec, err
		}
		d.Disks = append(d.Disks, libvirt.Disk{Path: root, Format: "qcow2", Target: "vda", Base: disk, Owned: true})
	} else {
		d.Boot = libvirt.Boot{Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 panic=-1"}
	}
	for range req.NICs {
		a, err := h.cfg.Network.Reserve()
		if err != nil {
			return rec, err
		}
		rec.Addresses = append(rec.Addresses, a)
	}
	for i, n := range req.NICs {
		d.NICs = append(d.NICs, h.nic(n, i))
	}
	rec.Targets = map[string]string{}
	for _, v := range req.Volumes {
		d.Disks = append(d.Disks, h.volumeDisk(v, rec.target(v.ID)))
	}
	id, err := h.cfg.Mint(ctx, req.Tenant, req.ID)
	if err != nil {
		return rec, fmt.Errorf("vmhost: identity of %s: %w", req.ID, err)
	}
	rec.UserPub, rec.AttestPub = id.UserPub, id.AttestPub
	meta, err := h.writeMeta(req, rec, id)
	if err != nil {
		return rec, err
	}
	d.FwCfg = []libvirt.FwCfg{{Name: "meta", File: meta}}
	if err := h.cfg.Libvirt.Define(d); err != nil {
		return rec, fmt.Errorf("vmhost: define %s: %w", req.ID, err)
	}
	if err := h.save(rec); err != nil {
		h.cfg.Libvirt.Undefine(d.Name)
		return rec, err
	}
	h.log.Info("vm defined", "vm", req.ID, "tenant", req.Tenant, "name", req.Name)
	return rec, nil
}

// writeMeta writes the VM's metadata (0600; libvirt gives it to QEMU while the VM runs).
func (h *Host) writeMeta(req rings.VMRequest, rec record, id Identity) (string, error) {
	m := guest.Meta{Node: req.ID, Tenant: req.Tenant, Name: req.Name, Hostname: req.Name, Gateway: h.cfg.Network.Gateway(),
		NATS: h.cfg.NATS, Creds: id.Creds, Attest: id.AttestSeed, SSHKeys: req.SSHKeys, UserData: req.UserData}
	for _, a := range rec.Addresses {
		m.Addresses = append(m.Addresses, netip.PrefixFrom(a, h.cfg.Prefix.Bits()))
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("vmhost: metadata of %s: %w", req.ID, err)
	}
	if _, err := guest.ParseMeta(b); err != nil { // what the guest would refuse, refuse here
		return "", fmt.Errorf("vmhost: metadata of %s: %w", req.ID, err)
	}
	p := filepath.Join(h.vmDir(req.ID), "meta.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return "", fmt.Errorf("vmhost: %w", err)
	}
	return p, nil
}

// change brings a defined VM's NICs and volumes to what req lists: hot-plugged while it runs
// (libvirt keeps its definition in step either way).
func (h *Host) change(rec record, req rings.VMRequest) (record, error) {
	name := string(req.ID)
	old := rec.Request
	for i, n := range old.NICs {
		if !slices.ContainsFunc(req.NICs, func(x rings.VMNIC) bool { return x.MAC == n.MAC }) {
			if err := h.cfg.Libvirt.DetachNIC(name, n.MAC); err != nil {
				return rec, fmt.Errorf("vmhost: detach NIC %s of %s: %w", n.MAC, name, err)
			}
			h.cfg.Network.DisallowGuest(rec.Addresses[i])
			h.cfg.Network.Release(rec.Addresses[i])
			rec.Addresses[i] = netip.Addr{}
		}
	}
	var kept []netip.Addr
	for i, n := range old.NICs {
		if slices.ContainsFunc(req.NICs, func(x rings.VMNIC) bool { return x.MAC == n.MAC }) {
			kept = append(kept, rec.Addresses[i])
		}
	}
	rec.Addresses = kept
	for i, n := range req.NICs {
		if slices.ContainsFunc(old.NICs, func(x rings.VMNIC) bool { return x.MAC == n.MAC }) {
			continue
		}
		a, err := h.cfg.Network.Reserve()
		if err != nil {
			return rec, err
		}
		if err := h.cfg.Libvirt.AttachNIC(name, h.nic(n, i)); err != nil {
			h.cfg.Network.Release(a)
			return rec, fmt.Errorf("vmhost: attach NIC %s to %s: %w", n.MAC, name, err)
		}
		rec.Addresses = append(rec.Addresses, a)
	}
	if rec.Targets == nil {
		rec.Targets = map[string]string{}
	}
	for _, v := range old.Volumes {
		if !slices.ContainsFunc(req.Volumes, func(x rings.VMVolume) bool { return x.ID == v.ID }) {
			if err := h.cfg.Libvirt.DetachDisk(name, rec.Targets[v.ID]); err != nil {
				return rec, fmt.Errorf("vmhost: detach volume %s of %s: %w", v.ID, name, err)
			}
			delete(rec.Targets, v.ID)
		}
	}
	for _, v := range req.Volumes {
		if !slices.ContainsFunc(old.Volumes, func(x rings.VMVolume) bool { return x.ID == v.ID }) {
			if err := h.cfg.Libvirt.AttachDisk(name, h.volumeDisk(v, rec.target(v.ID))); err != nil {
				delete(rec.Targets, v.ID)
				return rec, fmt.Errorf("vmhost: attach volume %s to %s: %w", v.ID, name, err)
			}
		}
	}
	rec.Request = req
	return rec, h.save(rec)
}

// nic is the i-th NIC of a VM: an isolated port of the ring's bridge.
func (h *Host) nic(n rings.VMNIC, _ int) libvirt.NIC {
	return libvirt.NIC{MAC: n.MAC, Bridge: h.cfg.Bridge, Isolated: true}
}

// volumeDisk is a volume as the guest's device target.
func (h *Host) volumeDisk(v rings.VMVolume, target string) libvirt.Disk {
	return libvirt.Disk{Path: h.volumePath(v.ID), Format: "qcow2", Target: target}
}

// target is the device volume id has in the guest, given the first free one (vdb…vdq; vda
// is the root disk) if it has none yet. A volume keeps its device while it stays attached.
func (r *record) target(id string) string {
	if t, ok := r.Targets[id]; ok {
		return t
	}
	for c := 'b'; c <= 'q'; c++ {
		t := "vd" + string(c)
		if !slices.Contains(slices.Collect(maps.Values(r.Targets)), t) {
			r.Targets[id] = t
			return t
		}
	}
	return ""
}

func (h *Host) volumePath(id string) string { return filepath.Join(h.cfg.Dir, "volumes", id+".qcow2") }

// allow lets the VM's addresses reach the bus relay, or no longer.
func (h *Host) allow(rec record, on bool) {
	for _, a := range rec.Addresses {
		var err error
		if on {
			err = h.cfg.Network.AllowGuest(a)
		} else {
			err = h.cfg.Network.DisallowGuest(a)
		}
		if err != nil {
			h.log.Warn("relay access not changed", "vm", rec.Request.ID, "addr", a, "err", err)
		}
	}
}

func (h *Host) status(rec record) rings.VMStatus {
	st := rings.VMStatus{ID: rec.Request.ID, UserPub: rec.UserPub, AttestPub: rec.AttestPub}
	s, err := h.cfg.Libvirt.State(string(rec.Request.ID))
	if err != nil {
		st.State, st.Reason = rings.VMFailed, err.Error()
	} else {
		st.State = stateOf(s)
	}
	for _, a := range rec.Addresses {
		st.Addresses = append(st.Addresses, a.String())
	}
	return st
}
