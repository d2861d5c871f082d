package ring0

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/services/images"
	"enjin/services/inventory"
)

// CreateVolume records tenant t's new volume on the node hosting t and has the node make it.
func (r *Ring0) CreateVolume(ctx context.Context, t enjin.TenantID, name string, sizeGB int) (inventory.Volume, error) {
	node, err := r.vmHost(ctx, t)
	if err != nil {
		return inventory.Volume{}, err
	}
	v, err := r.store.CreateVolume(ctx, inventory.Volume{ID: inventory.NewID(), Tenant: t, Name: name, SizeGB: sizeGB, Node: node})
	if err != nil {
		return inventory.Volume{}, err
	}
	if err := r.volumeCommand(ctx, v, bus.VerbVolumeApply); err != nil {
		if derr := r.store.DeleteVolume(context.WithoutCancel(ctx), t, name, v.Version); derr != nil {
			r.log.Error("volume record not removed after a failed create", "tenant", t, "volume", name, "err", derr)
		}
		return inventory.Volume{}, err
	}
	return v, nil
}

// AttachVolume attaches tenant t's volume to its VM vmName (hot-plugged if it runs), or
// detaches it when vmName is "".
func (r *Ring0) AttachVolume(ctx context.Context, t enjin.TenantID, name, vmName string, version int64) (inventory.Volume, error) {
	v, err := r.store.GetVolume(ctx, t, name)
	if err != nil {
		return inventory.Volume{}, err
	}
	if v.Version != version {
		return inventory.Volume{}, fmt.Errorf("ring0: volume %s/%s: %w", t, name, inventory.ErrConflict)
	}
	was := v.VM
	vmID := ""
	if vmName != "" {
		vm, err := r.store.GetVM(ctx, t, vmName)
		if err != nil {
			return inventory.Volume{}, err
		}
		vmID = vm.ID
	}
	if v, err = r.store.AttachVolume(ctx, v, vmID); err != nil {
		return inventory.Volume{}, err
	}
	for _, id := range []string{was, vmID} { // the VM it left, and the one it joined
		if id == "" {
			continue
		}
		vms, _ := r.store.ListVMs(ctx, t)
		for _, vm := range vms {
			if vm.ID == id {
				if _, err := r.applyVM(ctx, vm); err != nil {
					return v, err
				}
			}
		}
	}
	return v, nil
}

// DeleteVolume deletes tenant t's unattached volume: its file on its node, then its record.
func (r *Ring0) DeleteVolume(ctx context.Context, t enjin.TenantID, name string, version int64) error {
	v, err := r.store.GetVolume(ctx, t, name)
	if err != nil {
		return err
	}
	switch {
	case v.Version != version:
		return fmt.Errorf("ring0: volume %s/%s: %w", t, name, inventory.ErrConflict)
	case v.VM != "":
		return fmt.Errorf("ring0: volume %s/%s is attached: %w", t, name, inventory.ErrInUse)
	}
	if err := r.volumeCommand(ctx, v, bus.VerbVolumeDelete); err != nil {
		return err
	}
	return r.store.DeleteVolume(ctx, t, name, version)
}

func (r *Ring0) volumeCommand(ctx context.Context, v inventory.Volume, verb string) error {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err := bus.Request[bus.VolumeRequest, struct{}](rctx, r.nc, bus.R0ToRing1Cmd(v.Node, verb),
		bus.VolumeRequest{ID: v.ID, Tenant: v.Tenant, SizeGB: v.SizeGB})
	if err != nil {
		if re, ok := errors.AsType[*bus.RemoteError](err); ok {
			return fmt.Errorf("ring0: volume %s/%s on %s: %s: %w", v.Tenant, v.Name, v.Node, re.Msg, ErrNode)
		}
		return fmt.Errorf("ring0: volume %s/%s: node %s: %v: %w", v.Tenant, v.Name, v.Node, err, ErrNode)
	}
	return nil
}

// serveImages answers ring 1 nodes fetching the images of the VMs they run, a piece at a
// time. A node gets only an image one of its own VMs boots; the caller is the one the server
// attests, never what the request says.
func (r *Ring0) serveImages() error {
	ring1, err := r.broker.Chain().Account(keys.RING1)
	if err != nil {
		return err
	}
	_, err = bus.Handle(r.nc, bus.Ring0API(bus.ServiceImage), "ring0", func(m *nats.Msg, req bus.ImageRequest) (bus.ImageReply, error) {
		var ci struct {
			Account string `json:"acc"`
			Name    string `json:"name_tag"`
		}
		if json.Unmarshal([]byte(m.Header.Get("Nats-Request-Info")), &ci) != nil || ci.Account != ring1.Public {
			return bus.ImageReply{}, errors.New("image: only ring 1 nodes fetch images here")
		}
		if r.images == nil {
			return bus.ImageReply{}, errors.New("image: ring 0 has no image store")
		}
		if req.Length <= 0 || req.Length > bus.MaxImageChunk || req.Offset < 0 {
			return bus.ImageReply{}, fmt.Errorf("image: want 1–%d bytes from an offset ≥ 0", bus.MaxImageChunk)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		im, ok := r.bootedImage(ctx, enjin.NodeID(ci.Name), req.Digest)
		if !ok {
			return bus.ImageReply{}, fmt.Errorf("image: %q runs no VM of image %s", ci.Name, req.Digest)
		}
		f, err := r.imageFile(ctx, im, images.Part(req.Part))
		if err != nil {
			return bus.ImageReply{}, fmt.Errorf("image %s %s: %w", req.Digest, req.Part, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return bus.ImageReply{}, err
		}
		buf := make([]byte, req.Length)
		n, err := f.ReadAt(buf, req.Offset)
		if err != nil && !errors.Is(err, io.EOF) {
			return bus.ImageReply{}, err
		}
		return bus.ImageReply{Size: fi.Size(), Data: buf[:n]}, nil
	})
	return err
}

// bootedImage is the image with digest that a VM on node boots, if one does: a tenant's, or a
// ring 1 host's.
func (r *Ring0) bootedImage(ctx context.Context, node enjin.NodeID, digest string) (inventory.Image, bool) {
	vms, err := r.store.VMsOn(ctx, node)
	if err != nil {
		return inventory.Image{}, false
	}
	ids, err := r.store.HostVMImagesOn(ctx, node) // and the ring 1 hosts it runs as VMs
	if err != nil {
		return inventory.Image{}, false
	}
	for _, vm := range vms {
		ids = append(ids, vm.Image)
	}
	for _, id := range ids {
		if im, err := r.store.GetImage(ctx, id); err == nil && im.Digest == digest {
			return im, true
		}
	}
	return inventory.Image{}, false
}
