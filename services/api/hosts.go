package api

import (
	"context"
	"net/http"

	"enjin"
	"enjin/services/inventory"
)

// Hosts is what the routes of ring 1 hosts run as VMs (the libvirt strategy) need from ring 0.
type Hosts interface {
	// GrowHost starts a new ring 1 host as a VM on ring 1 node parent, which joins with a
	// one-time token ring 0 hands it in its metadata, and returns its node record.
	GrowHost(ctx context.Context, parent enjin.NodeID, in HostCreate) (inventory.Node, error)
	// HostConsole is the last part of a ring 1 host VM's serial console.
	HostConsole(ctx context.Context, id enjin.NodeID) (string, error)
}

// HostCreate is the body of POST /v1/nodes/{node}/hosts.
type HostCreate struct {
	Image       string `json:"image" api:"required"`        // a public kernel image's id or name, built by deploy/guest-image.sh --ring1
	MachineType string `json:"machine_type" api:"required"` // see /v1/machine-types
	Label       string `json:"label,omitempty"`
}

func (b *HostCreate) validate() error {
	switch {
	case b.Image == "" || len(b.Image) > 100:
		return invalid("image: want a public image's id or name")
	case !enjin.IsSlug(b.MachineType):
		return invalid("machine_type %q: want the name of one of /v1/machine-types", trunc(b.MachineType, 80))
	}
	return checkLabel(b.Label)
}

func (a *API) growHost(c *call) error {
	h, ok := a.vms.(Hosts)
	if a.vms == nil || !ok {
		return errNoVMs
	}
	long(c)
	n, err := h.GrowHost(c.ctx, c.node(), *c.in.(*HostCreate))
	if err != nil {
		return err
	}
	a.created(c, "/v1/nodes/"+string(n.ID), n.Version, n)
	return nil
}

func (a *API) hostConsole(c *call) error {
	h, ok := a.vms.(Hosts)
	if a.vms == nil || !ok {
		return errNoVMs
	}
	text, err := h.HostConsole(c.ctx, c.node())
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, consoleText{Text: text})
	return nil
}
