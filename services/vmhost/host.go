// Package vmhost runs tenants' virtual machines on a ring 1 node, through libvirt (the
// `libvirt` supervision strategy). Ring 0 decides and records; vmhost realizes what ring 0
// asks (a enjin.VMRequest: the whole wanted state, so asking twice changes nothing) and says
// what it observes.
//
// Guarantees. An image is used only once its bytes match the digest ring 0 named. A VM's
// disk is a qcow2 overlay on the cached image (the image itself is shared and read-only). A
// VM gets its metadata — its bus credential and attestation key among it — through a file
// QEMU hands it over fw_cfg, never on a command line. A VM's first NIC is an isolated port of
// the ring's bridge with an address reserved on it, and only a VM may reach the bus relay on
// the gateway; its other NICs are ports of its tenant's networks (segments: a bridge and a
// VXLAN device per network), each guarded against spoofing before it exists. Destroy leaves no domain, disk, tap, address or file behind. A restarted node
// adopts the VMs it finds running (it does not restart them); domains not of this node are
// left alone.
//
// Ring 1 imports vmhost; vmhost imports the libvirt strategy, netseg, portguard and dhcpd,
// guest (the metadata's form) and enjin (the vocabulary).
package vmhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"enjin"
	"enjin/supervisors/dhcpd"
	"enjin/supervisors/libvirt"
	"enjin/supervisors/netseg"
	"enjin/supervisors/portguard"
)

// Hypervisor is what vmhost needs of libvirt; *libvirt.Conn has it.
type Hypervisor interface {
	Define(d libvirt.Domain) error
	Start(name string) error
	Shutdown(ctx context.Context, name string, timeout time.Duration) error
	Reboot(name string) error
	Undefine(name string) error
	State(name string) (libvirt.State, error)
	List() ([]libvirt.Info, error)
	AttachNIC(name string, n libvirt.NIC) error
	DetachNIC(name, mac string) error
	AttachDisk(name string, k libvirt.Disk) error
	DetachDisk(name, target string) error
	ConsoleLog(name string) (string, error)
}

// Addresses hands out the bridge's addresses to VMs and lets VMs reach the bus relay;
// *sandbox.Network has it.
type Addresses interface {
	Reserve() (netip.Addr, error)
	ReserveAddr(a netip.Addr) error
	Release(a netip.Addr)
	Gateway() netip.Addr
	AllowGuest(a netip.Addr) error
	DisallowGuest(a netip.Addr) error
	AllowHost(a netip.Addr) error
	DisallowHost(a netip.Addr) error
}

// Identity is a VM's bus identity: a .creds file's text (a user of its tenant's account,
// named for the VM) and its attestation key's seed, with the public keys ring 0 registers.
type Identity struct {
	Creds      string
	UserPub    string
	AttestSeed string
	AttestPub  string
}

// Config configures a host. Every field but Logger is required.
type Config struct {
	Dir     string       // images/, vms/ and volumes/ live here
	Node    enjin.NodeID // this ring 1 node
	Libvirt Hypervisor
	Bridge  string // the ring's bridge, where VMs' first NICs go
	Network Addresses
	// Segments, Guard and Underlay carry the tenants' networks (NICs with a enjin.Segment):
	// without them a NIC on a tenant network is refused.
	Segments *netseg.Host
	Guard    *portguard.Guard
	Underlay netip.Addr   // this host's VXLAN source
	Prefix   netip.Prefix // the bridge's addresses, for the guests' own configuration
	// Fetch writes part (qcow2, kernel or initrd) of the image with digest to w, from ring 0.
	Fetch func(ctx context.Context, digest, part string, w *os.File) error
	// Mint makes the bus identity of VM id of tenant t.
	Mint func(ctx context.Context, t enjin.TenantID, id enjin.NodeID) (Identity, error)
	// Revoke is told a destroyed VM's user key, for ring 0 to revoke.
	Revoke func(t enjin.TenantID, userPub string)
	NATS   []string // the bus URLs guests dial (the relay on the gateway)
	BusCA  []byte   // the CA (PEM) guests check the bus by, when it speaks TLS
	// Ring0API is ring 0's API as VMs that are ring 1 hosts reach it to join (a relay on the
	// gateway); "": this node makes no such VMs.
	Ring0API string
	// HostApps is the block a VM that is a ring 1 host gives its app instances; it must not
	// overlap Prefix. Invalid: 100.127.0.0/16, or 198.19.0.0/16 if Prefix overlaps that.
	HostApps netip.Prefix
	// MemoryMB is the memory offered to VMs in all; 0: the host's less a reserve (MemoryMB).
	MemoryMB int64
	Logger   *slog.Logger
}

// Host runs VMs. Its methods are safe for concurrent use; operations on one VM are serialized.
type Host struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	locks  map[enjin.NodeID]*sync.Mutex
	images sync.Mutex   // one image fetch at a time
	segMu  sync.RWMutex // see prune
	dhcpMu sync.Mutex
	dhcp   map[int]*dhcpd.Server // the DHCP servers this host runs, by VNI

	seen seen // the VMs last listed, for the heartbeat
}

// New checks cfg and makes the host's directories. QEMU (run by libvirt as its own user)
// must traverse them to reach a VM's files, so they are 0711: nobody may list them.
func New(cfg Config) (*Host, error) {
	if cfg.Dir == "" || cfg.Libvirt == nil || cfg.Network == nil || cfg.Fetch == nil || cfg.Mint == nil || cfg.Bridge == "" {
		return nil, errors.New("vmhost: Dir, Libvirt, Network, Fetch, Mint and Bridge are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Revoke == nil {
		cfg.Revoke = func(enjin.TenantID, string) {}
	}
	if !cfg.HostApps.IsValid() {
		cfg.HostApps = netip.MustParsePrefix("100.127.0.0/16")
		if cfg.HostApps.Overlaps(cfg.Prefix) {
			cfg.HostApps = netip.MustParsePrefix("198.19.0.0/16")
		}
	}
	if cfg.HostApps.Overlaps(cfg.Prefix) {
		return nil, fmt.Errorf("vmhost: HostApps %s overlaps the bridge's %s", cfg.HostApps, cfg.Prefix)
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("vmhost: %w", err)
	}
	cfg.Dir = abs
	for _, d := range []string{"", "images", "vms", "volumes", "dhcp"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o711); err != nil {
			return nil, fmt.Errorf("vmhost: %w", err)
		}
		if err := os.Chmod(filepath.Join(abs, d), 0o711); err != nil {
			return nil, fmt.Errorf("vmhost: %w", err)
		}
	}
	return &Host{cfg: cfg, log: cfg.Logger.With("ring", 1), locks: map[enjin.NodeID]*sync.Mutex{}, dhcp: map[int]*dhcpd.Server{}}, nil
}

// lock serializes the operations on one VM; the caller calls the function it returns.
func (h *Host) lock(id enjin.NodeID) func() {
	h.mu.Lock()
	l := h.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		h.locks[id] = l
	}
	h.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// record is what the node keeps of a VM it runs (vms/<id>/vm.json): the last request it
// realized and what it gave the VM.
type record struct {
	Request   enjin.VMRequest   `json:"request"`
	Addresses []netip.Addr      `json:"addresses"` // one per NIC, in order; none (zero) for a NIC on a tenant network
	Targets   map[string]string `json:"targets"`   // each volume's device in the guest (vdb…), by volume id
	UserPub   string            `json:"user_pub"`
	AttestPub string            `json:"attest_pub"`
}

func (h *Host) vmDir(id enjin.NodeID) string { return filepath.Join(h.cfg.Dir, "vms", string(id)) }

func (h *Host) load(id enjin.NodeID) (record, bool) {
	b, err := os.ReadFile(filepath.Join(h.vmDir(id), "vm.json"))
	if err != nil {
		return record{}, false
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		h.log.Error("vm record unreadable", "vm", id, "err", err)
		return record{}, false
	}
	return r, true
}

func (h *Host) save(r record) error {
	b, _ := json.MarshalIndent(r, "", "  ")
	p := filepath.Join(h.vmDir(r.Request.ID), "vm.json")
	if err := os.WriteFile(p+".tmp", b, 0o600); err != nil {
		return fmt.Errorf("vmhost: %w", err)
	}
	return os.Rename(p+".tmp", p)
}

// Restore adopts the VMs of this node that are running, after a restart of the node: their
// addresses are taken again and they may reach the relay. They are not restarted. A domain
// of this node that has no record here is reported, not touched.
func (h *Host) Restore() error {
	infos, err := h.cfg.Libvirt.List()
	if err != nil {
		return fmt.Errorf("vmhost: restore: %w", err)
	}
	h.saw(infos) // the heartbeat's first listing, should libvirtd be slow to answer the next
	var adopted []record
	defer func() {
		if err := h.restoreSegments(adopted); err != nil {
			h.log.Error("tenant networks of adopted VMs not restored", "err", err)
		}
		h.stopLeftoverDHCP()
	}()
	for _, in := range infos {
		if in.Meta.Node != h.cfg.Node {
			continue
		}
		r, ok := h.load(enjin.NodeID(in.Name))
		if !ok {
			h.log.Warn("a domain of this node without a record here; left alone", "domain", in.Name)
			continue
		}
		adopted = append(adopted, r)
		for _, a := range r.Addresses {
			if !a.IsValid() {
				continue
			}
			if err := h.cfg.Network.ReserveAddr(a); err != nil {
				h.log.Warn("vm address not taken again", "vm", in.Name, "addr", a, "err", err)
			}
		}
		if in.State == libvirt.Running {
			h.allow(r, true)
		}
		h.log.Info("vm adopted", "vm", in.Name, "tenant", r.Request.Tenant, "state", in.State)
	}
	return nil
}

// stateOf says a libvirt state in enjin's words.
func stateOf(s libvirt.State) string {
	switch s {
	case libvirt.Running, libvirt.Blocked:
		return enjin.VMRunning
	case libvirt.ShutOff, libvirt.ShuttingDown:
		return enjin.VMStopped
	case libvirt.Crashed:
		return enjin.VMCrashed
	default:
		return s.String()
	}
}
