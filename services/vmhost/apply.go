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
	"strings"
	"time"

	"enjin"
	"enjin/guest"
	"enjin/supervisors/libvirt"
)

// stopTimeout is how long a VM asked to stop gets to power off (ACPI) before it is forced.
const stopTimeout = 30 * time.Second

// Apply makes VM req.ID what req says: defined (its image fetched, its disk, addresses,
// identity and metadata made) the first time, its NICs and volumes added or removed (while it
// runs, hot-plugged), and running or stopped. Asking again for the same changes nothing.
func (h *Host) Apply(ctx context.Context, req enjin.VMRequest) (enjin.VMStatus, error) {
	if err := check(req); err != nil {
		return enjin.VMStatus{}, err
	}
	defer h.lock(req.ID)()
	var gone []int // networks of NICs taken away, whose segments may go once this is done
	defer func() { h.prune(gone, "") }()
	h.segMu.RLock()
	defer h.segMu.RUnlock()
	rec, defined := h.load(req.ID)
	if defined && rec.Request.Tenant != req.Tenant {
		return enjin.VMStatus{}, fmt.Errorf("vmhost: vm %s is another tenant's", req.ID)
	}
	var err error
	if !defined {
		if h.exists(req.ID) { // a domain of that name this node has no record of: not ours to take
			return enjin.VMStatus{}, fmt.Errorf("vmhost: a domain named %s exists without a record here; left alone", req.ID)
		}
		if rec, err = h.define(ctx, req); err != nil {
			gone = segmentVNIs(req.NICs, false) // segments (and DHCP servers) joined for nothing
		}
	} else {
		rec, gone, err = h.change(rec, req)
	}
	if err != nil {
		return enjin.VMStatus{}, err
	}
	for _, v := range segmentVNIs(req.NICs, true) { // before the VM starts and asks
		h.syncDHCP(v)
	}
	name := string(req.ID)
	switch req.State {
	case enjin.VMRunning:
		if err := h.cfg.Libvirt.Start(name); err != nil {
			return enjin.VMStatus{}, fmt.Errorf("vmhost: start %s: %w", name, err)
		}
		h.allow(rec, true)
	case enjin.VMStopped:
		if err := h.cfg.Libvirt.Shutdown(ctx, name, stopTimeout); err != nil && !errors.Is(err, libvirt.ErrNotFound) {
			return enjin.VMStatus{}, fmt.Errorf("vmhost: stop %s: %w", name, err)
		}
		h.allow(rec, false)
	}
	return h.status(rec), nil
}

// exists reports whether libvirt has a domain named id (of enjin's, any node's).
func (h *Host) exists(id enjin.NodeID) bool {
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
func check(req enjin.VMRequest) error {
	switch {
	case !enjin.IsUUID(string(req.ID)):
		return fmt.Errorf("vmhost: vm id %q: want a UUID", req.ID)
	case req.Host != nil:
		if err := checkHost(req); err != nil {
			return err
		}
	case req.Tenant.Validate() != nil:
		return fmt.Errorf("vmhost: vm %s: tenant %q", req.ID, req.Tenant)
	}
	switch {
	case req.VCPUs < 1 || req.VCPUs > 64 || req.MemoryMB < 64 || req.MemoryMB > 1<<20 || req.DiskGB < 1 || req.DiskGB > 16384:
		return fmt.Errorf("vmhost: vm %s: sizes out of bounds", req.ID)
	case req.State != enjin.VMRunning && req.State != enjin.VMStopped:
		return fmt.Errorf("vmhost: vm %s: state %q", req.ID, req.State)
	case len(req.NICs) == 0 || len(req.NICs) > 8 || len(req.Volumes) > 16:
		return fmt.Errorf("vmhost: vm %s: 1–8 NICs and at most 16 volumes", req.ID)
	}
	for _, v := range req.Volumes {
		if !enjin.IsUUID(v.ID) {
			return fmt.Errorf("vmhost: vm %s: volume id %q", req.ID, v.ID)
		}
	}
	if req.NICs[0].Segment != nil {
		return fmt.Errorf("vmhost: vm %s: its first NIC is on the node's own network", req.ID)
	}
	for _, n := range req.NICs {
		if n.Segment != nil {
			if err := checkSegment(n.MAC, n.Segment); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkHost refuses a ring 1 host VM that is not only that: a tenant's, on a tenant network,
// with volumes or user data, or with a token that is none.
func checkHost(req enjin.VMRequest) error {
	t := req.Host.Token
	switch {
	case req.Tenant != "":
		return fmt.Errorf("vmhost: vm %s: a ring 1 host is no tenant's", req.ID)
	case len(req.NICs) != 1 || len(req.Volumes) != 0 || req.UserData != "":
		return fmt.Errorf("vmhost: vm %s: a ring 1 host has one NIC, on the node's network, and no volumes or user data", req.ID)
	case t == "" || len(t) > enjin.MaxJoinToken || strings.IndexFunc(t, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
		return fmt.Errorf("vmhost: vm %s: join token: want 1 to %d printable ASCII characters", req.ID, enjin.MaxJoinToken)
	}
	return nil
}

// define makes a new VM: its directory, disk, addresses, identity, metadata and domain.
func (h *Host) define(ctx context.Context, req enjin.VMRequest) (rec record, err error) {
	dir := h.vmDir(req.ID)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return rec, fmt.Errorf("vmhost: %w", err)
	}
	rec = record{Request: req}
	defer func() {
		if err != nil { // nothing of a VM that could not be made stays
			h.release(rec.Addresses...)
			for _, n := range req.NICs {
				if n.Segment != nil && h.cfg.Guard != nil {
					h.leave(n)
				}
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
		Meta: libvirt.Meta{Tenant: req.Tenant, VM: req.Name, Node: h.cfg.Node, Host: req.Host != nil}}
	if disk != "" {
		root := filepath.Join(dir, "disk.qcow2")
		if err := libvirt.Overlay(ctx, disk, root, req.DiskGB); err != nil {
			return rec, err
		}
		d.Disks = append(d.Disks, libvirt.Disk{Path: root, Format: "qcow2", Target: "vda", Base: disk, Owned: true})
	} else {
		d.Boot = libvirt.Boot{Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 panic=-1"}
	}
	for _, n := range req.NICs {
		a, err := h.address(n)
		if err != nil {
			return rec, err
		}
		rec.Addresses = append(rec.Addresses, a)
		d.NICs = append(d.NICs, h.libvirtNIC(n))
	}
	rec.Targets = map[string]string{}
	for _, v := range req.Volumes {
		d.Disks = append(d.Disks, h.volumeDisk(v, rec.target(v.ID)))
	}
	var id Identity // a ring 1 host makes its own, as it joins
	if req.Host == nil {
		if id, err = h.cfg.Mint(ctx, req.Tenant, req.ID); err != nil {
			return rec, fmt.Errorf("vmhost: identity of %s: %w", req.ID, err)
		}
	} else if h.cfg.Ring0API == "" {
		return rec, fmt.Errorf("vmhost: vm %s: this node reaches no ring 0 API for a ring 1 host to join through", req.ID)
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
func (h *Host) writeMeta(req enjin.VMRequest, rec record, id Identity) (string, error) {
	m := guest.Meta{Node: req.ID, Tenant: req.Tenant, Name: req.Name, Hostname: req.Name, Gateway: h.cfg.Network.Gateway(),
		NATS: h.cfg.NATS, CA: string(h.cfg.BusCA), Creds: id.Creds, Attest: id.AttestSeed, SSHKeys: req.SSHKeys, UserData: req.UserData}
	for _, a := range rec.Addresses {
		if a.IsValid() {
			m.Addresses = append(m.Addresses, netip.PrefixFrom(a, h.cfg.Prefix.Bits()))
		}
	}
	m.Links = links(req)
	if req.Host != nil {
		m.Host = &guest.Host{Token: req.Host.Token, Ring0: h.cfg.Ring0API, Apps: h.cfg.HostApps}
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
// (libvirt keeps its definition in step either way). It returns the networks of the NICs it
// took away.
func (h *Host) change(rec record, req enjin.VMRequest) (record, []int, error) {
	name := string(req.ID)
	old := rec.Request
	has := func(nics []enjin.VMNIC, mac string) bool {
		return slices.ContainsFunc(nics, func(x enjin.VMNIC) bool { return x.MAC == mac })
	}
	var gone []int
	addrs := map[string]netip.Addr{} // the node's address of each NIC that stays, by MAC
	was := map[string]enjin.VMNIC{}  // and what it was
	for i, n := range old.NICs {
		if has(req.NICs, n.MAC) {
			addrs[n.MAC], was[n.MAC] = rec.Addresses[i], n
			continue
		}
		if err := h.cfg.Libvirt.DetachNIC(name, n.MAC); err != nil {
			return rec, gone, fmt.Errorf("vmhost: detach NIC %s of %s: %w", n.MAC, name, err)
		}
		if a := rec.Addresses[i]; a.IsValid() {
			h.cfg.Network.DisallowGuest(a)
			h.release(a)
		}
		if n.Segment != nil {
			h.leave(n)
			gone = append(gone, n.Segment.VNI)
		}
	}
	rec.Addresses = nil
	for _, n := range req.NICs {
		if a, kept := addrs[n.MAC]; kept {
			if n.Segment != nil { // the network's other hosts, its rule sets may have changed
				if err := h.rejoin(was[n.MAC], n); err != nil {
					return rec, gone, err
				}
			}
			rec.Addresses = append(rec.Addresses, a)
			continue
		}
		a, err := h.address(n)
		if err != nil {
			return rec, gone, err
		}
		if err := h.cfg.Libvirt.AttachNIC(name, h.libvirtNIC(n)); err != nil {
			h.release(a)
			if n.Segment != nil {
				h.leave(n)
			}
			return rec, gone, fmt.Errorf("vmhost: attach NIC %s to %s: %w", n.MAC, name, err)
		}
		rec.Addresses = append(rec.Addresses, a)
	}
	if rec.Targets == nil {
		rec.Targets = map[string]string{}
	}
	for _, v := range old.Volumes {
		if !slices.ContainsFunc(req.Volumes, func(x enjin.VMVolume) bool { return x.ID == v.ID }) {
			if err := h.cfg.Libvirt.DetachDisk(name, rec.Targets[v.ID]); err != nil {
				return rec, gone, fmt.Errorf("vmhost: detach volume %s of %s: %w", v.ID, name, err)
			}
			delete(rec.Targets, v.ID)
		}
	}
	for _, v := range req.Volumes {
		if !slices.ContainsFunc(old.Volumes, func(x enjin.VMVolume) bool { return x.ID == v.ID }) {
			if err := h.cfg.Libvirt.AttachDisk(name, h.volumeDisk(v, rec.target(v.ID))); err != nil {
				delete(rec.Targets, v.ID)
				return rec, gone, fmt.Errorf("vmhost: attach volume %s to %s: %w", v.ID, name, err)
			}
		}
	}
	rec.Request = req
	return rec, gone, h.save(rec)
}

// address readies NIC n before it is plugged: on the node's network, an address of its
// bridge; on a tenant network, its segment and guard (its address is its port's: none here).
func (h *Host) address(n enjin.VMNIC) (netip.Addr, error) {
	if n.Segment != nil {
		return netip.Addr{}, h.join(n)
	}
	return h.cfg.Network.Reserve()
}

// release gives the node's addresses among addrs back.
func (h *Host) release(addrs ...netip.Addr) {
	for _, a := range addrs {
		if a.IsValid() {
			h.cfg.Network.Release(a)
		}
	}
}

// volumeDisk is a volume as the guest's device target.
func (h *Host) volumeDisk(v enjin.VMVolume, target string) libvirt.Disk {
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

// allow lets the VM's addresses reach the bus relay (and, for a ring 1 host, ring 0's API
// relay), or no longer.
func (h *Host) allow(rec record, on bool) {
	for _, a := range rec.Addresses {
		if !a.IsValid() {
			continue
		}
		var err error
		switch host := rec.Request.Host != nil; {
		case on && host:
			err = errors.Join(h.cfg.Network.AllowGuest(a), h.cfg.Network.AllowHost(a))
		case on:
			err = h.cfg.Network.AllowGuest(a)
		case host:
			err = errors.Join(h.cfg.Network.DisallowGuest(a), h.cfg.Network.DisallowHost(a))
		default:
			err = h.cfg.Network.DisallowGuest(a)
		}
		if err != nil {
			h.log.Warn("relay access not changed", "vm", rec.Request.ID, "addr", a, "err", err)
		}
	}
}

func (h *Host) status(rec record) enjin.VMStatus {
	st := enjin.VMStatus{ID: rec.Request.ID, UserPub: rec.UserPub, AttestPub: rec.AttestPub}
	s, err := h.cfg.Libvirt.State(string(rec.Request.ID))
	if err != nil {
		st.State, st.Reason = enjin.VMFailed, err.Error()
	} else {
		st.State = stateOf(s)
	}
	for i, n := range rec.Request.NICs {
		if n.Segment != nil {
			for _, p := range n.Segment.Addresses {
				st.Addresses = append(st.Addresses, netip.MustParsePrefix(p).Addr().String()) // checked
			}
		} else if i < len(rec.Addresses) && rec.Addresses[i].IsValid() {
			st.Addresses = append(st.Addresses, rec.Addresses[i].String())
		}
	}
	return st
}
