package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"enjin"
	"enjin/services/inventory"
)

var errNoVMs = &apiError{http.StatusServiceUnavailable, "unavailable", "this ring 0 runs no VMs"}

// ErrNoRoom is a VM its node has no room for: 409.
var ErrNoRoom = errors.New("no room for it")

// ErrNodeFailed is a VM or volume operation the ring 1 node refused or did not answer: 502.
var ErrNodeFailed = errors.New("the ring 1 node did not carry it out")

// VMs is what the VM routes need from ring 0: each operation records what is wanted and has
// the VM's ring 1 node carry it out, answering once it has (or ErrNodeFailed).
type VMs interface {
	CreateVM(ctx context.Context, t enjin.TenantID, in VMCreate) (inventory.VM, error)
	SetVMState(ctx context.Context, t enjin.TenantID, name, state string, version int64) (inventory.VM, error)
	RebootVM(ctx context.Context, t enjin.TenantID, name string) (inventory.VM, error)
	DestroyVM(ctx context.Context, t enjin.TenantID, name string, version int64) error
	AddVMNIC(ctx context.Context, t enjin.TenantID, name string, nic NICAdd, version int64) (inventory.VM, error)
	RemoveVMNIC(ctx context.Context, t enjin.TenantID, name, mac string, version int64) (inventory.VM, error)
	VMConsole(ctx context.Context, t enjin.TenantID, name string) (string, error)
	CreateVolume(ctx context.Context, t enjin.TenantID, name string, sizeGB int) (inventory.Volume, error)
	AttachVolume(ctx context.Context, t enjin.TenantID, name, vm string, version int64) (inventory.Volume, error)
	DeleteVolume(ctx context.Context, t enjin.TenantID, name string, version int64) error
}

// VMCreate is the body of POST /v1/tenants/{tenant}/vms.
type VMCreate struct {
	Name        string   `json:"name" api:"required"`
	Image       string   `json:"image" api:"required"`        // id, or name (the tenant's, else a public one)
	MachineType string   `json:"machine_type" api:"required"` // see /v1/machine-types
	Networks    []string `json:"networks,omitempty"`          // the tenant's networks to join, after the node's own ("default")
	Rulesets    []string `json:"rulesets,omitempty"`          // rule sets each NIC on a tenant network enforces, in order
	Router      string   `json:"router,omitempty"`            // one of networks the VM routes for: its NIC there is the network's default route
	SSHKeys     []string `json:"ssh_keys,omitempty"`
	UserData    string   `json:"user_data,omitempty"`
}

// sshKey is an OpenSSH public key line: type, base64 key, optional comment (lengths are
// checked apart: Go's regexp repeats at most 1000).
var sshKey = regexp.MustCompile(`^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/=]+( [ -~]*)?$`)

func (b *VMCreate) validate() error {
	switch {
	case !enjin.IsSlug(b.Name):
		return invalid("name %q: want a slug", trunc(b.Name, 80))
	case b.Image == "" || len(b.Image) > 100:
		return invalid("image: want an image's id or name")
	case !enjin.IsSlug(b.MachineType):
		return invalid("machine_type %q: want the name of one of /v1/machine-types", trunc(b.MachineType, 80))
	case len(b.Networks) > 8:
		return invalid("networks: at most 8")
	case len(b.SSHKeys) > 32:
		return invalid("ssh_keys: at most 32")
	case len(b.UserData) > 64<<10 || !utf8.ValidString(b.UserData) || strings.IndexByte(b.UserData, 0) >= 0:
		return invalid("user_data: at most 64 KiB of UTF-8 text without NUL")
	}
	for _, n := range b.Networks {
		if !enjin.IsSlug(n) {
			return invalid("networks: %q is not a network's name", trunc(n, 80))
		}
	}
	if b.Router != "" && (!slices.Contains(b.Networks, b.Router) || b.Router == enjin.DefaultNetwork || len(b.Networks) < 2) {
		return invalid("router %q: want one of the VM's tenant networks, and another for it to route to", trunc(b.Router, 80))
	}
	if err := validRulesetNames("", b.Rulesets); err != nil {
		return err
	}
	for _, k := range b.SSHKeys {
		if len(k) > 16<<10 || !sshKey.MatchString(k) {
			return invalid("ssh_keys: %q is not an OpenSSH public key line", trunc(k, 40))
		}
	}
	return nil
}

type vmPatch struct {
	State string `json:"state" api:"required"` // running or stopped
}

func (b *vmPatch) validate() error { return oneOf("state", b.State, enjin.VMRunning, enjin.VMStopped) }

// rebootBody is a reboot's body, which says nothing (yet).
type rebootBody struct{}

func (b *rebootBody) validate() error { return nil }

// NICAdd is the body of POST /v1/tenants/{tenant}/vms/{vm}/nics.
type NICAdd struct {
	Network  string   `json:"network" api:"required"`
	Rulesets []string `json:"rulesets,omitempty"` // on a tenant network: rule sets to enforce, in order
}

func (b *NICAdd) validate() error {
	if !enjin.IsSlug(b.Network) {
		return invalid("network %q: want a network's name", trunc(b.Network, 80))
	}
	return validRulesetNames(b.Network, b.Rulesets)
}

// validRulesetNames checks the rule sets named for NICs on network ("" for several).
func validRulesetNames(network string, names []string) error {
	if len(names) > 8 {
		return invalid("rulesets: at most 8")
	}
	if len(names) > 0 && network == enjin.DefaultNetwork {
		return invalid("rulesets: the node's own network takes none")
	}
	for _, n := range names {
		if !enjin.IsSlug(n) {
			return invalid("rulesets: %q is not a rule set's name", trunc(n, 80))
		}
	}
	return nil
}

type volumeCreate struct {
	Name   string `json:"name" api:"required"`
	SizeGB int    `json:"size_gb" api:"required"`
}

func (b *volumeCreate) validate() error {
	switch {
	case !enjin.IsSlug(b.Name):
		return invalid("name %q: want a slug", trunc(b.Name, 80))
	case b.SizeGB < 1 || b.SizeGB > 16384:
		return invalid("size_gb %d: want 1 to 16384", b.SizeGB)
	}
	return nil
}

type volumeAttach struct {
	VM string `json:"vm"` // the VM's name; "" detaches
}

func (b *volumeAttach) validate() error {
	if b.VM != "" && !enjin.IsSlug(b.VM) {
		return invalid("vm %q: want a VM's name, or \"\" to detach", trunc(b.VM, 80))
	}
	return nil
}

type machineTypeCreate struct {
	Name     string `json:"name" api:"required"`
	VCPUs    int    `json:"vcpus" api:"required"`
	MemoryMB int    `json:"memory_mb" api:"required"`
	DiskGB   int    `json:"disk_gb" api:"required"`
}

func (b *machineTypeCreate) validate() error {
	switch {
	case !enjin.IsSlug(b.Name):
		return invalid("name %q: want a slug", trunc(b.Name, 80))
	case b.VCPUs < 1 || b.VCPUs > 64:
		return invalid("vcpus %d: want 1 to 64", b.VCPUs)
	case b.MemoryMB < 64 || b.MemoryMB > 1<<20:
		return invalid("memory_mb %d: want 64 to 1048576", b.MemoryMB)
	case b.DiskGB < 1 || b.DiskGB > 16384:
		return invalid("disk_gb %d: want 1 to 16384", b.DiskGB)
	}
	return nil
}

type machineTypeList struct {
	MachineTypes []inventory.MachineType `json:"machine_types"`
}

type vmList struct {
	VMs []inventory.VM `json:"vms"`
}

type volumeList struct {
	Volumes []inventory.Volume `json:"volumes"`
}

type consoleText struct {
	Text string `json:"text"`
}

func (c *call) vm() string     { return c.path["vm"] }
func (c *call) volume() string { return c.path["volume"] }

// long lets a route wait for a ring 1 node (an image fetched, a VM booted) past the server's
// write timeout.
func long(c *call) {
	_ = http.NewResponseController(c.w).SetWriteDeadline(time.Time{})
}

func (a *API) listMachineTypes(c *call) error {
	ms, err := a.store.MachineTypes(c.ctx)
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, machineTypeList{MachineTypes: nonNil(ms)})
	return nil
}

func (a *API) createMachineType(c *call) error {
	b := c.in.(*machineTypeCreate)
	m, err := a.store.CreateMachineType(c.ctx, inventory.MachineType{Name: b.Name, VCPUs: b.VCPUs, MemoryMB: b.MemoryMB, DiskGB: b.DiskGB})
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusCreated, m)
	return nil
}

func (a *API) listVMs(c *call) error {
	vs, err := a.store.ListVMs(c.ctx, c.tenant())
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, vmList{VMs: nonNil(vs)})
	return nil
}

func (a *API) createVM(c *call) error {
	if a.vms == nil {
		return errNoVMs
	}
	if _, err := a.store.GetTenant(c.ctx, c.tenant()); err != nil {
		return err
	}
	long(c)
	vm, err := a.vms.CreateVM(c.ctx, c.tenant(), *c.in.(*VMCreate))
	if err != nil {
		return err
	}
	a.created(c, "/v1/tenants/"+string(vm.Tenant)+"/vms/"+vm.Name, vm.Version, vm)
	return nil
}

func (a *API) getVM(c *call) error {
	vm, err := a.store.GetVM(c.ctx, c.tenant(), c.vm())
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, vm.Version, vm)
	return nil
}

func (a *API) patchVM(c *call) error {
	if a.vms == nil {
		return errNoVMs
	}
	long(c)
	vm, err := a.vms.SetVMState(c.ctx, c.tenant(), c.vm(), c.in.(*vmPatch).State, c.version)
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, vm.Version, vm)
	return nil
}

func (a *API) rebootVM(c *call) error {
	if a.vms == nil {
		return errNoVMs
	}
	long(c)
	vm, err := a.vms.RebootVM(c.ctx, c.tenant(), c.vm())
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, vm.Version, vm)
	return nil
}

func (a *API) destroyVM(c *call) error {
	if a.vms == nil {
		return errNoVMs
	}
	long(c)
	if err := a.vms.DestroyVM(c.ctx, c.tenant(), c.vm(), c.version); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) addNIC(c *call) error {
	if a.vms == nil {
		return errNoVMs
	}
	long(c)
	vm, err := a.vms.AddVMNIC(c.ctx, c.tenant(), c.vm(), *c.in.(*NICAdd), c.version)
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, vm.Version, vm)
	return nil
}

func (a *API) removeNIC(c *call) error {
	if a.vms == nil {
		return errNoVMs
	}
	long(c)
	vm, err := a.vms.RemoveVMNIC(c.ctx, c.tenant(), c.vm(), c.path["mac"], c.version)
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, vm.Version, vm)
	return nil
}

func (a *API) vmConsole(c *call) error {
	if a.vms == nil {
		return errNoVMs
	}
	text, err := a.vms.VMConsole(c.ctx, c.tenant(), c.vm())
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, consoleText{Text: text})
	return nil
}

func (a *API) listVolumes(c *call) error {
	vs, err := a.store.ListVolumes(c.ctx, c.tenant())
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, volumeList{Volumes: nonNil(vs)})
	return nil
}

func (a *API) createVolume(c *call) error {
	if a.vms == nil {
		return errNoVMs
	}
	if _, err := a.store.GetTenant(c.ctx, c.tenant()); err != nil {
		return err
	}
	long(c)
	b := c.in.(*volumeCreate)
	v, err := a.vms.CreateVolume(c.ctx, c.tenant(), b.Name, b.SizeGB)
	if err != nil {
		return err
	}
	a.created(c, "/v1/tenants/"+string(v.Tenant)+"/volumes/"+v.Name, v.Version, v)
	return nil
}

func (a *API) getVolume(c *call) error {
	v, err := a.store.GetVolume(c.ctx, c.tenant(), c.volume())
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, v.Version, v)
	return nil
}

func (a *API) attachVolume(c *call) error {
	if a.vms == nil {
		return errNoVMs
	}
	long(c)
	v, err := a.vms.AttachVolume(c.ctx, c.tenant(), c.volume(), c.in.(*volumeAttach).VM, c.version)
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, v.Version, v)
	return nil
}

func (a *API) deleteVolume(c *call) error {
	if a.vms == nil {
		return errNoVMs
	}
	long(c)
	if err := a.vms.DeleteVolume(c.ctx, c.tenant(), c.volume(), c.version); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// vmRoutes are the VM, volume and machine type operations.
func (a *API) vmRoutes() []route {
	t := "/v1/tenants/{tenant}"
	rs := []route{
		{method: "GET", path: t + "/vms", access: reader, summary: "The tenant's VMs, by name", status: http.StatusOK, out: vmList{}, serve: a.listVMs},
		{method: "POST", path: t + "/vms", access: admin, summary: "Create a VM from an image and a machine type on the ring 1 node hosting the tenant; answers once it runs",
			body: &VMCreate{}, status: http.StatusCreated, out: inventory.VM{}, serve: a.createVM},
		{method: "GET", path: t + "/vms/{vm}", access: reader, summary: "A VM: what is wanted, where it runs, its state as its node observes it; ETag is its version",
			status: http.StatusOK, out: inventory.VM{}, serve: a.getVM},
		{method: "PATCH", path: t + "/vms/{vm}", access: admin, summary: `Start or stop a VM: {"state": "running"|"stopped"} (stop is ACPI, then forced after a timeout)`,
			ifMatch: mustMatch, body: &vmPatch{}, status: http.StatusOK, out: inventory.VM{}, serve: a.patchVM},
		{method: "POST", path: t + "/vms/{vm}/reboot", access: admin, summary: "Reboot a running VM",
			body: &rebootBody{}, optional: true, status: http.StatusOK, out: inventory.VM{}, serve: a.rebootVM},
		{method: "DELETE", path: t + "/vms/{vm}", access: admin, summary: "Destroy a VM: its domain, disks and taps; its volumes are detached and kept",
			ifMatch: mustMatch, status: http.StatusNoContent, serve: a.destroyVM},
		{method: "POST", path: t + "/vms/{vm}/nics", access: admin, summary: "Add a network interface (hot-plugged if the VM runs)",
			ifMatch: mustMatch, body: &NICAdd{}, status: http.StatusOK, out: inventory.VM{}, serve: a.addNIC},
		{method: "DELETE", path: t + "/vms/{vm}/nics/{mac}", access: admin, summary: "Remove a network interface (hot-unplugged if the VM runs)",
			ifMatch: mustMatch, status: http.StatusOK, out: inventory.VM{}, serve: a.removeNIC},
		{method: "GET", path: t + "/vms/{vm}/console", access: reader, summary: "The last part of the VM's serial console",
			status: http.StatusOK, out: consoleText{}, serve: a.vmConsole},
		{method: "GET", path: t + "/volumes", access: reader, summary: "The tenant's volumes, by name", status: http.StatusOK, out: volumeList{}, serve: a.listVolumes},
		{method: "POST", path: t + "/volumes", access: admin, summary: "Create a volume on the ring 1 node hosting the tenant",
			body: &volumeCreate{}, status: http.StatusCreated, out: inventory.Volume{}, serve: a.createVolume},
		{method: "GET", path: t + "/volumes/{volume}", access: reader, summary: "A volume; ETag is its version",
			status: http.StatusOK, out: inventory.Volume{}, serve: a.getVolume},
		{method: "PUT", path: t + "/volumes/{volume}/attachment", access: admin, summary: `Attach a volume to a VM of the same node ({"vm": name}, hot-plugged if it runs) or detach it ({"vm": ""})`,
			ifMatch: mustMatch, body: &volumeAttach{}, status: http.StatusOK, out: inventory.Volume{}, serve: a.attachVolume},
		{method: "DELETE", path: t + "/volumes/{volume}", access: admin, summary: "Delete a volume attached to no VM, and its data",
			ifMatch: mustMatch, status: http.StatusNoContent, serve: a.deleteVolume},
	}
	for i := range rs {
		rs[i].tenantOK = true // a tenant manages its own VMs and volumes
	}
	return append(rs,
		route{method: "GET", path: "/v1/machine-types", access: reader, summary: "The sizes VMs come in", status: http.StatusOK, out: machineTypeList{}, serve: a.listMachineTypes},
		route{method: "POST", path: "/v1/machine-types", access: admin, summary: "Add a machine type", body: &machineTypeCreate{},
			status: http.StatusCreated, out: inventory.MachineType{}, serve: a.createMachineType},
	)
}
