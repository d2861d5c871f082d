package ring0

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"enjin"
	"enjin/bus"
	"enjin/services/api"
	"enjin/services/inventory"
)

// vmTimeout bounds a VM command's round trip: a first start fetches the image and boots.
const vmTimeout = 5 * time.Minute

// CreateVM records tenant t's new VM on the ring 1 node hosting t, and has the node make and
// start it. If the node cannot, the record goes and the error says why.
func (r *Ring0) CreateVM(ctx context.Context, t enjin.TenantID, in api.VMCreate) (inventory.VM, error) {
	mt, err := r.store.MachineType(ctx, in.MachineType)
	if err != nil {
		return inventory.VM{}, fmt.Errorf("ring0: machine type %q: %w", in.MachineType, inventory.ErrInvalid)
	}
	img, err := r.vmImage(ctx, t, in.Image)
	if err != nil {
		return inventory.VM{}, err
	}
	node, err := r.vmHost(ctx, t)
	if err != nil {
		return inventory.VM{}, err
	}
	// Every VM's first NIC is on the node's own network: its way to the bus (its signed
	// heartbeats) and the router's to it. The tenant's networks follow, in the order asked.
	nets := append([]string{enjin.DefaultNetwork}, slices.DeleteFunc(slices.Clone(in.Networks), func(n string) bool { return n == enjin.DefaultNetwork })...)
	if err := r.checkNetworks(ctx, t, nets); err != nil {
		return inventory.VM{}, err
	}
	if err := r.checkRulesets(ctx, t, in.Rulesets); err != nil {
		return inventory.VM{}, err
	}
	spec := inventory.VMSpec{Networks: nets, SSHKeys: in.SSHKeys, UserData: in.UserData}
	for _, n := range nets {
		nic := inventory.NIC{MAC: newMAC(), Network: n}
		if n != enjin.DefaultNetwork {
			nic.Rulesets, nic.Router = in.Rulesets, n == in.Router
		}
		spec.NICs = append(spec.NICs, nic)
	}
	// The host signs what it promises: its bid is stored with the VM's placement.
	w, err := r.auction(ctx, bus.Offer{Kind: bus.PlaceVM, Tenant: t, App: in.Name, MemoryMB: mt.MemoryMB}, []api.AppsBackend{{Node: node}}, nil)
	if err != nil {
		return inventory.VM{}, err
	}
	vm, err := r.placeVM(ctx, mt, inventory.VM{ID: inventory.NewID(), Tenant: t, Name: in.Name, Image: img.ID,
		MachineType: in.MachineType, Node: node, Spec: spec, Bid: w.signed})
	if err != nil {
		return inventory.VM{}, err
	}
	if _, err := r.applyVM(ctx, vm); err != nil {
		// The record first: a change carried to the tenant's VMs meanwhile (a router, a rule
		// set's members) finds the VM no more, and makes it no port once they are released.
		if derr := r.store.DeleteVM(context.WithoutCancel(ctx), t, vm.Name, vm.Version); derr != nil {
			r.log.Error("vm record not removed after a failed create", "tenant", t, "vm", vm.Name, "err", derr)
		}
		r.releasePorts(context.WithoutCancel(ctx), vmOwner(vm.ID))
		return inventory.VM{}, err
	}
	r.log.Info("vm created", "tenant", t, "vm", vm.Name, "node", node)
	return r.store.GetVM(ctx, t, vm.Name)
}

// SetVMState starts (running) or stops (stopped) tenant t's VM name, if its version is
// still version.
func (r *Ring0) SetVMState(ctx context.Context, t enjin.TenantID, name, state string, version int64) (inventory.VM, error) {
	if state != enjin.VMRunning && state != enjin.VMStopped {
		return inventory.VM{}, fmt.Errorf("ring0: vm state %q: want running or stopped: %w", state, inventory.ErrInvalid)
	}
	return r.changeVM(ctx, t, name, version, func(v *inventory.VM) error { v.DesiredState = state; return nil })
}

// AddVMNIC adds a network interface on nic.Network, enforcing nic.Rulesets, to tenant t's VM
// name (hot-plugged if it runs); RemoveVMNIC takes the one with mac away.
func (r *Ring0) AddVMNIC(ctx context.Context, t enjin.TenantID, name string, nic api.NICAdd, version int64) (inventory.VM, error) {
	return r.changeVM(ctx, t, name, version, func(v *inventory.VM) error {
		if len(v.Spec.NICs) >= 8 {
			return fmt.Errorf("ring0: vm %s/%s has 8 NICs, the most: %w", t, name, inventory.ErrInvalid)
		}
		if err := r.checkNetworks(ctx, t, []string{nic.Network}); err != nil {
			return err
		}
		if err := r.checkRulesets(ctx, t, nic.Rulesets); err != nil {
			return err
		}
		v.Spec.NICs = append(v.Spec.NICs, inventory.NIC{MAC: newMAC(), Network: nic.Network, Rulesets: nic.Rulesets})
		return nil
	})
}

// RemoveVMNIC takes the NIC with mac away from tenant t's VM name.
func (r *Ring0) RemoveVMNIC(ctx context.Context, t enjin.TenantID, name, mac string, version int64) (inventory.VM, error) {
	return r.changeVM(ctx, t, name, version, func(v *inventory.VM) error {
		for i, n := range v.Spec.NICs {
			if n.MAC == mac {
				v.Spec.NICs = append(v.Spec.NICs[:i:i], v.Spec.NICs[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("ring0: vm %s/%s has no NIC %s: %w", t, name, mac, inventory.ErrNotFound)
	})
}

// changeVM saves a change to a VM's record, has its node apply it, and records what the node
// then observes. The record keeps the change if the node fails (it is what is wanted); the
// error says the node did not get there.
func (r *Ring0) changeVM(ctx context.Context, t enjin.TenantID, name string, version int64, change func(*inventory.VM) error) (inventory.VM, error) {
	vm, err := r.store.GetVM(ctx, t, name)
	if err != nil {
		return inventory.VM{}, err
	}
	if vm.Version != version {
		return inventory.VM{}, fmt.Errorf("ring0: vm %s/%s: %w", t, name, inventory.ErrConflict)
	}
	if err := change(&vm); err != nil {
		return inventory.VM{}, err
	}
	if vm, err = r.store.UpdateVM(ctx, vm); err != nil {
		return inventory.VM{}, err
	}
	if _, err := r.applyVM(ctx, vm); err != nil {
		return vm, err
	}
	return r.store.GetVM(ctx, t, name)
}

// RebootVM reboots tenant t's running VM name.
func (r *Ring0) RebootVM(ctx context.Context, t enjin.TenantID, name string) (inventory.VM, error) {
	vm, err := r.store.GetVM(ctx, t, name)
	if err != nil {
		return inventory.VM{}, err
	}
	if _, err := r.vmCommand(ctx, vm, bus.VerbVMReboot); err != nil {
		return vm, err
	}
	return r.store.GetVM(ctx, t, name)
}

// DestroyVM destroys tenant t's VM name — its domain, disks and taps on its node — and then
// its record, if its version is still version. Its volumes are detached and kept.
func (r *Ring0) DestroyVM(ctx context.Context, t enjin.TenantID, name string, version int64) error {
	vm, err := r.store.GetVM(ctx, t, name)
	if err != nil {
		return err
	}
	if vm.Version != version {
		return fmt.Errorf("ring0: vm %s/%s: %w", t, name, inventory.ErrConflict)
	}
	if _, err := r.vmCommand(ctx, vm, bus.VerbVMDestroy); err != nil {
		return err
	}
	if n, err := r.store.GetNode(ctx, enjin.NodeID(vm.ID)); err == nil {
		r.vmKeys.Delete(n.AuthPub)
		r.verify.Forget(n.ID)
	}
	// The record before the ports (see CreateVM).
	if err := r.store.DeleteVM(ctx, t, name, version); err != nil {
		return err
	}
	r.releasePorts(ctx, vmOwner(vm.ID))
	r.log.Info("vm destroyed", "tenant", t, "vm", name, "node", vm.Node)
	return nil
}

// VMConsole returns the last part of tenant t's VM name's serial console.
func (r *Ring0) VMConsole(ctx context.Context, t enjin.TenantID, name string) (string, error) {
	vm, err := r.store.GetVM(ctx, t, name)
	if err != nil {
		return "", err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rep, err := bus.Request[bus.VMRef, bus.ConsoleReply](rctx, r.nc, bus.R0ToRing1Cmd(vm.Node, bus.VerbVMConsole),
		bus.VMRef{ID: enjin.NodeID(vm.ID), Tenant: t})
	if err != nil {
		return "", r.nodeErr(vm, err)
	}
	return rep.Text, nil
}

// applyVM sends vm's whole wanted state to its node and records the state it answers.
func (r *Ring0) applyVM(ctx context.Context, vm inventory.VM) (enjin.VMStatus, error) {
	req, err := r.vmRequest(ctx, vm)
	if err != nil {
		return enjin.VMStatus{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, vmTimeout)
	defer cancel()
	st, err := bus.Request[enjin.VMRequest, enjin.VMStatus](rctx, r.nc, bus.R0ToRing1Cmd(vm.Node, bus.VerbVMApply), req)
	if err != nil {
		r.recordVM(vm.ID, enjin.VMFailed, nil)
		return st, r.nodeErr(vm, err)
	}
	if err := r.registerVM(ctx, vm, st); err != nil {
		return st, err
	}
	r.recordVM(vm.ID, st.State, st.Addresses)
	return st, nil
}

// vmCommand sends a verb naming one VM to its node and records the state it answers.
func (r *Ring0) vmCommand(ctx context.Context, vm inventory.VM, verb string) (enjin.VMStatus, error) {
	rctx, cancel := context.WithTimeout(ctx, vmTimeout)
	defer cancel()
	st, err := bus.Request[bus.VMRef, enjin.VMStatus](rctx, r.nc, bus.R0ToRing1Cmd(vm.Node, verb),
		bus.VMRef{ID: enjin.NodeID(vm.ID), Tenant: vm.Tenant})
	if err != nil {
		return st, r.nodeErr(vm, err)
	}
	if verb != bus.VerbVMDestroy {
		r.recordVM(vm.ID, st.State, st.Addresses)
	}
	return st, nil
}

func (r *Ring0) recordVM(id, state string, addrs []string) {
	if state == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.store.SetVMObserved(ctx, id, state, addrs); err != nil {
		r.log.Warn("vm state not recorded", "vm", id, "err", err)
	}
}

// ErrNode is a VM operation its ring 1 node refused or did not answer.
var ErrNode = api.ErrNodeFailed

func (r *Ring0) nodeErr(vm inventory.VM, err error) error {
	if re, ok := errors.AsType[*bus.RemoteError](err); ok {
		return fmt.Errorf("ring0: vm %s/%s on %s: %s: %w", vm.Tenant, vm.Name, vm.Node, re.Msg, ErrNode)
	}
	return fmt.Errorf("ring0: vm %s/%s: node %s: %v: %w", vm.Tenant, vm.Name, vm.Node, err, ErrNode)
}

// vmRequest is everything vm's node needs to realize it.
func (r *Ring0) vmRequest(ctx context.Context, vm inventory.VM) (enjin.VMRequest, error) {
	mt, err := r.store.MachineType(ctx, vm.MachineType)
	if err != nil {
		return enjin.VMRequest{}, err
	}
	im, err := r.store.GetImage(ctx, vm.Image)
	if err != nil {
		return enjin.VMRequest{}, fmt.Errorf("ring0: vm %s/%s: its image: %w", vm.Tenant, vm.Name, err)
	}
	vols, err := r.store.VolumesOf(ctx, vm.ID)
	if err != nil {
		return enjin.VMRequest{}, err
	}
	req := enjin.VMRequest{ID: enjin.NodeID(vm.ID), Tenant: vm.Tenant, Name: vm.Name, VCPUs: mt.VCPUs, MemoryMB: mt.MemoryMB,
		DiskGB: mt.DiskGB, Image: imageOf(im), SSHKeys: vm.Spec.SSHKeys, UserData: vm.Spec.UserData, State: vm.DesiredState}
	segs, err := r.segments(ctx, vm)
	if err != nil {
		return enjin.VMRequest{}, err
	}
	for _, n := range vm.Spec.NICs {
		req.NICs = append(req.NICs, enjin.VMNIC{MAC: n.MAC, Network: n.Network, Segment: segs[n.MAC]})
	}
	for _, v := range vols {
		req.Volumes = append(req.Volumes, enjin.VMVolume{ID: v.ID, Name: v.Name, SizeGB: v.SizeGB})
	}
	return req, nil
}

func imageOf(im inventory.Image) enjin.VMImage {
	v := enjin.VMImage{ID: im.ID, Kind: im.Kind, Digest: im.Digest}
	if im.Kernel != nil {
		v.Kernel, v.Initrd = im.Kernel.Digest, im.Initrd.Digest
	}
	return v
}

// vmImage finds the image a tenant names: by id, or by name among its own images and then
// the public ones.
func (r *Ring0) vmImage(ctx context.Context, t enjin.TenantID, ref string) (inventory.Image, error) {
	if enjin.IsUUID(ref) {
		im, err := r.store.GetImage(ctx, ref)
		if err == nil && (im.Public || im.Tenant == t) {
			return im, nil
		}
		return inventory.Image{}, fmt.Errorf("ring0: image %s: %w", ref, inventory.ErrNotFound)
	}
	for _, owner := range []enjin.TenantID{t, ""} {
		ims, err := r.store.ListImages(ctx, inventory.ImageFilter{Owners: []enjin.TenantID{owner}, Name: ref})
		if err != nil {
			return inventory.Image{}, err
		}
		if len(ims) == 1 {
			return ims[0], nil
		}
	}
	return inventory.Image{}, fmt.Errorf("ring0: image %q: %w", ref, inventory.ErrNotFound)
}

// placeVM records vm on its node if the node has room for a VM of type mt: the memory of the
// VMs already placed there and this one's fit in what the node last said it offers VMs.
func (r *Ring0) placeVM(ctx context.Context, mt inventory.MachineType, vm inventory.VM) (inventory.VM, error) {
	r.placeMu.Lock()
	defer r.placeMu.Unlock()
	if err := r.roomFor(ctx, vm.Node, mt, "VM"); err != nil {
		return inventory.VM{}, err
	}
	return r.store.CreateVM(ctx, vm)
}

// roomFor refuses a kind of VM of type mt that would not fit on node: the memory of the VMs
// placed there and its must fit in what the node last said it offers VMs. The caller holds
// placeMu.
func (r *Ring0) roomFor(ctx context.Context, node enjin.NodeID, mt inventory.MachineType, kind string) error {
	offered, err := r.vmMemoryOffered(ctx, node)
	if err != nil {
		return err
	}
	used, err := r.store.VMMemoryOn(ctx, node)
	if err != nil {
		return err
	}
	if used+int64(mt.MemoryMB) > offered {
		return fmt.Errorf("ring0: no room on node %s for a %s %s (%d MiB): its VMs hold %d MiB of the %d MiB it offers: %w",
			node, mt.Name, kind, mt.MemoryMB, used, offered, api.ErrNoRoom)
	}
	return nil
}

// vmMemoryOffered is the memory node offers its VMs, as its last own observation says.
func (r *Ring0) vmMemoryOffered(ctx context.Context, node enjin.NodeID) (int64, error) {
	claim, err := r.lastClaim(ctx, node)
	if errors.Is(err, errNoClaim) {
		return 0, fmt.Errorf("ring0: node %s has not said what it offers VMs yet: %w", node, api.ErrNoRoom)
	}
	if err != nil {
		return 0, err
	}
	if claim.VMMemoryMB == 0 {
		return 0, fmt.Errorf("ring0: node %s hosts no VMs (does libvirtd run there?): %w", node, api.ErrNoRoom)
	}
	return claim.VMMemoryMB, nil
}

// errNoClaim is a node that has made no observation of its own yet.
var errNoClaim = errors.New("no observation of its own yet")

// vmHost is where tenant t's VMs run: the first up ring 1 node hosting t (it holds the
// scoped key the VM's bus credential is minted with) that offers VMs room.
func (r *Ring0) vmHost(ctx context.Context, t enjin.TenantID) (enjin.NodeID, error) {
	tn, err := r.store.GetTenant(ctx, t)
	if err != nil {
		return "", err
	}
	var up enjin.NodeID
	for _, h := range tn.Hosts {
		if n, err := r.store.GetNode(ctx, h.Node); err != nil || n.State != "up" {
			continue
		}
		if claim, err := r.lastClaim(ctx, h.Node); err == nil && claim.VMMemoryMB > 0 {
			return h.Node, nil
		}
		if up == "" {
			up = h.Node // placeVM says why it cannot take the VM
		}
	}
	if up != "" {
		return up, nil
	}
	return "", fmt.Errorf("ring0: no ring 1 node hosting %s is up: %w", t, ErrNode)
}

// newMAC is a random locally administered unicast MAC in QEMU's 52:54:00 prefix.
func newMAC() string {
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
}

// registerVM makes VM vm a ring 2 node whose own signed observations ring 0 takes: its
// attestation key registered with the verifier, and its bus user's key mapped to it (its
// observations' subject names the user, not the node).
func (r *Ring0) registerVM(ctx context.Context, vm inventory.VM, st enjin.VMStatus) error {
	if st.UserPub == "" || st.AttestPub == "" {
		return nil
	}
	id := enjin.NodeID(vm.ID)
	if _, loaded := r.vmKeys.Load(st.UserPub); loaded {
		return nil // already known: applies after the first change nothing
	}
	n, err := r.store.RegisterNode(ctx, inventory.Node{ID: id, Ring: enjin.Ring2, Label: string(vm.Tenant) + "/" + vm.Name,
		Supervision: "libvirt", Observation: "self", ParentNode: string(vm.Node), AuthPub: st.UserPub, AttestPub: st.AttestPub,
		Metadata: map[string]any{"tenant": string(vm.Tenant), "vm": vm.Name}})
	if err != nil {
		return err
	}
	if err := r.verify.Register(id, st.AttestPub, n.LastSeq); err != nil {
		return err
	}
	r.vmKeys.Store(st.UserPub, id)
	return nil
}

// vmByKey is the VM whose bus user has key.
func (r *Ring0) vmByKey(key string) (enjin.NodeID, bool) {
	v, ok := r.vmKeys.Load(key)
	if !ok {
		return "", false
	}
	return v.(enjin.NodeID), true
}

// loadVMKeys maps the bus users of the VMs the store knows to their nodes, at start.
func (r *Ring0) loadVMKeys(ctx context.Context) error {
	vms, err := r.store.ListVMs(ctx, "")
	if err != nil {
		return err
	}
	for _, vm := range vms {
		n, err := r.store.GetNode(ctx, enjin.NodeID(vm.ID))
		if err == nil && n.AuthPub != "" {
			r.vmKeys.Store(n.AuthPub, n.ID)
		}
	}
	return nil
}
