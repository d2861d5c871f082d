package ring0

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/services/api"
	"enjin/services/inventory"
)

// hostJoinTTL is how long the token a ring 1 host VM joins with lasts: its boot, under TCG.
const hostJoinTTL = 10 * time.Minute

// GrowHost starts a ring 1 host as a VM on ring 1 node parent — the libvirt strategy, the
// cloud growing itself: the new node is registered (supervised by libvirt, parent its parent),
// given a one-time join token in its metadata (never on a command line), and the VM made and
// started on parent from a public kernel image (deploy/guest-image.sh --ring1). The VM joins
// on its own through parent's relay to this API and heartbeats, signed, like any ring 1 node;
// GrowHost returns once the VM runs. If parent cannot run it, the node is decommissioned
// again and the error says why.
func (r *Ring0) GrowHost(ctx context.Context, parent enjin.NodeID, in api.HostCreate) (inventory.Node, error) {
	p, err := r.store.GetNode(ctx, parent)
	if err != nil {
		return inventory.Node{}, err
	}
	if p.Ring != enjin.Ring1 {
		return inventory.Node{}, fmt.Errorf("ring0: node %s is in ring %d; ring 1 hosts run VMs: %w", parent, p.Ring, inventory.ErrInvalid)
	}
	if p.State != "up" {
		return inventory.Node{}, fmt.Errorf("ring0: node %s is %s, not up: %w", parent, p.State, ErrNode)
	}
	mt, err := r.store.MachineType(ctx, in.MachineType)
	if err != nil {
		return inventory.Node{}, fmt.Errorf("ring0: machine type %q: %w", in.MachineType, inventory.ErrInvalid)
	}
	img, err := r.vmImage(ctx, "", in.Image) // public images only: a host is no tenant's
	if err != nil {
		return inventory.Node{}, err
	}
	if img.Kind != "kernel" {
		return inventory.Node{}, fmt.Errorf("ring0: image %s is a %s image; a ring 1 host boots a kernel image (deploy/guest-image.sh --ring1): %w", img.Name, img.Kind, inventory.ErrInvalid)
	}
	r.placeMu.Lock()
	err = r.roomFor(ctx, parent, mt, "host VM")
	r.placeMu.Unlock()
	if err != nil {
		return inventory.Node{}, err
	}
	id := enjin.NodeID(inventory.NewID())
	n, err := r.store.CreateNode(ctx, inventory.Node{ID: id, Ring: enjin.Ring1, Label: cmp.Or(in.Label, "vm on "+string(parent)),
		Supervision: "libvirt", Observation: "self", ParentNode: string(parent), Metadata: map[string]any{"image": img.ID}})
	if err != nil {
		return inventory.Node{}, err
	}
	tok, err := r.store.CreateJoinToken(ctx, id, hostJoinTTL)
	if err == nil {
		req := enjin.VMRequest{ID: id, Name: "ring1-" + string(id)[:8], VCPUs: mt.VCPUs, MemoryMB: mt.MemoryMB, DiskGB: mt.DiskGB,
			Image: imageOf(img), NICs: []enjin.VMNIC{{MAC: newMAC(), Network: enjin.DefaultNetwork}},
			State: enjin.VMRunning, Host: &enjin.VMHost{Token: keys.JoinToken(tok, r.ca.Fingerprint())}}
		rctx, cancel := context.WithTimeout(ctx, vmTimeout)
		_, err = bus.Request[enjin.VMRequest, enjin.VMStatus](rctx, r.nc, bus.R0ToRing1Cmd(parent, bus.VerbVMApply), req)
		cancel()
		if re, ok := errors.AsType[*bus.RemoteError](err); ok {
			err = fmt.Errorf("ring0: node %s cannot run ring 1 host %s: %s: %w", parent, id, re.Msg, ErrNode)
		} else if err != nil {
			err = fmt.Errorf("ring0: node %s: %v: %w", parent, err, ErrNode)
		}
	}
	if err != nil {
		if _, derr := r.store.Decommission(context.WithoutCancel(ctx), id, n.Version); derr != nil {
			r.log.Error("a ring 1 host VM that did not start is still registered", "node", id, "err", derr)
		}
		return inventory.Node{}, err
	}
	r.log.Info("ring 1 host VM started", "node", id, "parent", parent, "image", img.Name)
	r.event("host-grown", map[string]any{"node": id, "parent": parent})
	return n, nil
}

// hostVM is node id, if it is a ring 1 host that runs as a VM on its parent.
func (r *Ring0) hostVM(ctx context.Context, id enjin.NodeID) (inventory.Node, error) {
	n, err := r.store.GetNode(ctx, id)
	if err != nil {
		return n, err
	}
	if n.Ring != enjin.Ring1 || n.Supervision != "libvirt" || n.ParentNode == "" {
		return n, fmt.Errorf("ring0: node %s is no ring 1 host run as a VM: %w", id, inventory.ErrNotFound)
	}
	return n, nil
}

// HostConsole is the last part of ring 1 host VM id's serial console, from its parent.
func (r *Ring0) HostConsole(ctx context.Context, id enjin.NodeID) (string, error) {
	n, err := r.hostVM(ctx, id)
	if err != nil {
		return "", err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rep, err := bus.Request[bus.VMRef, bus.ConsoleReply](rctx, r.nc, bus.R0ToRing1Cmd(enjin.NodeID(n.ParentNode), bus.VerbVMConsole), bus.VMRef{ID: id})
	if err != nil {
		return "", fmt.Errorf("ring0: console of %s on %s: %v: %w", id, n.ParentNode, err, ErrNode)
	}
	return rep.Text, nil
}

// destroyHostVM destroys the VM of decommissioned ring 1 host n on its parent, if it is one.
func (r *Ring0) destroyHostVM(ctx context.Context, n inventory.Node) {
	if n.Supervision != "libvirt" || n.ParentNode == "" {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, vmTimeout)
	defer cancel()
	if _, err := bus.Request[bus.VMRef, enjin.VMStatus](rctx, r.nc, bus.R0ToRing1Cmd(enjin.NodeID(n.ParentNode), bus.VerbVMDestroy), bus.VMRef{ID: n.ID}); err != nil {
		r.log.Error("the VM of a decommissioned ring 1 host not destroyed", "node", n.ID, "parent", n.ParentNode, "err", err)
		return
	}
	r.log.Info("ring 1 host VM destroyed", "node", n.ID, "parent", n.ParentNode)
}
