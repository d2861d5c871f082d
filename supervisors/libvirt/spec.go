package libvirt

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"

	"enjin"
)

// Domain is what a VM is made of. Paths are absolute; libvirtd and QEMU read them on this
// host (see the package doc for the permissions they need).
type Domain struct {
	Name      string // libvirt's name for it, unique on the host
	UUID      string // empty: libvirt makes one
	KVM       bool   // hardware acceleration (HasKVM); otherwise QEMU emulates the CPU (TCG)
	VCPUs     uint
	MemoryMiB uint
	// Boot is a kernel, initrd and command line to start directly; the zero Boot starts the
	// BIOS, which boots the first disk.
	Boot  Boot
	Disks []Disk
	NICs  []NIC
	// ConsoleLog is the file the first serial port's output goes to, truncated at each start.
	// virtlogd writes it, as root, and Undefine leaves it.
	ConsoleLog string
	Meta       Meta
	// FwCfg passes files to the guest through QEMU's fw_cfg device (opt/enjin/<name> in the
	// guest's /sys/firmware/qemu_fw_cfg), never through a command line others can read.
	FwCfg []FwCfg
}

// Boot is a direct kernel boot.
type Boot struct {
	Kernel, Initrd, Cmdline string
}

// Disk is a block device of the guest.
type Disk struct {
	Path     string
	Format   string // "qcow2" or "raw": always given, never probed
	Target   string // the guest's device: vda, vdb, …
	ReadOnly bool
	// Base is the qcow2 base of an overlay made by Overlay. It is shown to QEMU read-only
	// and never relabelled: many guests may share it.
	Base string
	// Owned marks a file made for this domain only: Undefine deletes it.
	Owned bool
}

// NIC is a virtio network interface on a tap device: one libvirt creates and plugs into
// Bridge, or, without Bridge, the tap named Tap, which libvirt creates if it is missing.
// libvirt deletes the taps it created when the guest stops.
type NIC struct {
	MAC    string // 52:54:00:…
	Bridge string
	Tap    string // the tap's name (≤ 15 bytes, not vnet…); empty with Bridge: vnetN
	// Isolated makes the tap an isolated port of Bridge: it reaches the bridge's own address
	// (the host) but no other isolated port — no other guest, no app instance.
	Isolated bool
	// MTU, if set, is the link's MTU, told to the guest (virtio's host_mtu): a NIC on a
	// VXLAN-carried network has less room than the underlay.
	MTU uint
}

// FwCfg is one file for the guest: Name under opt/enjin/, File on the host.
type FwCfg struct {
	Name, File string
}

// FwCfgPrefix is where FwCfg entries appear in the guest's fw_cfg directory.
const FwCfgPrefix = "opt/enjin/"

// Namespace is the XML namespace of enjin's element in a domain's <metadata>.
const Namespace = "urn:enjin:domain:1"

// Meta is enjin's element in a domain's <metadata>: how ring 1 recognises its own domains
// among the host's, and what it may delete with them.
type Meta struct {
	XMLName xml.Name       `xml:"urn:enjin:domain:1 vm"`
	Tenant  enjin.TenantID `xml:"tenant"`
	VM      string         `xml:"name"`
	Node    enjin.NodeID   `xml:"node"`
	// Owns lists the files Undefine deletes; Define fills it from the Disks marked Owned.
	Owns []string `xml:"owns,omitempty"`
	// Host marks the VM of a ring 1 host (the libvirt strategy), which is no tenant's: it has
	// Tenant empty, and only it may.
	Host bool `xml:"host,omitempty"`
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]{0,62}$`)
	targetRE = regexp.MustCompile(`^vd[a-z]{1,2}$`)
	fwcfgRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,40}$`)
)

// Validate reports every problem with d together.
func (d *Domain) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !nameRE.MatchString(d.Name) {
		bad("name %q: want 1–63 of [A-Za-z0-9_.+-]", d.Name)
	}
	if d.VCPUs == 0 || d.MemoryMiB == 0 {
		bad("vcpus %d, memory %d MiB: want both above 0", d.VCPUs, d.MemoryMiB)
	}
	if d.Boot.Kernel == "" && (d.Boot.Initrd != "" || d.Boot.Cmdline != "") {
		bad("boot: initrd or cmdline without a kernel")
	}
	if d.Boot.Kernel == "" && len(d.Disks) == 0 {
		bad("boot: no kernel and no disk")
	}
	for _, p := range []string{d.Boot.Kernel, d.Boot.Initrd, d.ConsoleLog} {
		if p != "" && !filepath.IsAbs(p) {
			bad("path %q is not absolute", p)
		}
	}
	if d.ConsoleLog == "" {
		bad("no console log")
	}
	if (d.Meta.Tenant == "") != d.Meta.Host || d.Meta.VM == "" || d.Meta.Node == "" {
		bad("meta %+v: tenant (unless a ring 1 host's, which has none), name and node are required", d.Meta)
	}
	targets := map[string]bool{}
	for _, k := range d.Disks {
		if err := k.validate(); err != nil {
			errs = append(errs, err)
		}
		if targets[k.Target] {
			bad("disk target %s used twice", k.Target)
		}
		targets[k.Target] = true
	}
	for _, n := range d.NICs {
		if err := n.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range d.FwCfg {
		if !fwcfgRE.MatchString(f.Name) || !filepath.IsAbs(f.File) {
			bad("fw_cfg %q from %q: want a short lowercase name and an absolute path", f.Name, f.File)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("domain %s: %w", d.Name, err)
	}
	return nil
}

func (k *Disk) validate() error {
	var errs []error
	if !filepath.IsAbs(k.Path) {
		errs = append(errs, fmt.Errorf("path %q is not absolute", k.Path))
	}
	if k.Format != "qcow2" && k.Format != "raw" {
		errs = append(errs, fmt.Errorf("format %q: want qcow2 or raw", k.Format))
	}
	if !targetRE.MatchString(k.Target) {
		errs = append(errs, fmt.Errorf("target %q: want vdX", k.Target))
	}
	if k.Base != "" && (k.Format != "qcow2" || !filepath.IsAbs(k.Base)) {
		errs = append(errs, fmt.Errorf("base %q: want an absolute path under a qcow2 overlay", k.Base))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("disk %s: %w", k.Target, err)
	}
	return nil
}

func (n *NIC) validate() error {
	var errs []error
	if hw, err := net.ParseMAC(n.MAC); err != nil || len(hw) != 6 || hw[0]&1 == 1 {
		errs = append(errs, fmt.Errorf("mac %q: want a unicast EUI-48", n.MAC))
	}
	if n.Bridge == "" && n.Tap == "" {
		errs = append(errs, errors.New("neither bridge nor tap"))
	}
	for _, name := range []string{n.Bridge, n.Tap} {
		if len(name) > 15 || strings.ContainsAny(name, "/ \t\n") {
			errs = append(errs, fmt.Errorf("link name %q: want at most 15 bytes, no '/' or spaces", name))
		}
	}
	if strings.HasPrefix(n.Tap, "vnet") || strings.HasPrefix(n.Tap, "vif") {
		errs = append(errs, fmt.Errorf("tap %q: libvirt reserves the prefixes vnet and vif", n.Tap))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nic %s: %w", n.MAC, err)
	}
	return nil
}
