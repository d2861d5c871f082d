package libvirt

import (
	"encoding/xml"
	"fmt"

	"libvirt.org/go/libvirtxml"

	"enjin"
)

// XML is the domain's libvirt definition. Define calls it; it is exported for golden tests
// and for people reading what enjin asks libvirt for.
func (d *Domain) XML() (string, error) {
	if err := d.Validate(); err != nil {
		return "", err
	}
	meta := d.Meta
	meta.Owns = nil
	for _, k := range d.Disks {
		if k.Owned {
			meta.Owns = append(meta.Owns, k.Path)
		}
	}
	md, err := xml.Marshal(meta)
	if err != nil {
		return "", fmt.Errorf("domain %s: metadata: %w", d.Name, err)
	}
	x := libvirtxml.Domain{
		Type:       "qemu",
		Name:       d.Name,
		UUID:       d.UUID,
		Metadata:   &libvirtxml.DomainMetadata{XML: string(md)},
		Memory:     &libvirtxml.DomainMemory{Value: d.MemoryMiB, Unit: "MiB"},
		VCPU:       &libvirtxml.DomainVCPU{Value: d.VCPUs},
		SysInfo:    d.sysinfo(),
		OS:         d.os(),
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}, APIC: &libvirtxml.DomainFeatureAPIC{}},
		Clock:      &libvirtxml.DomainClock{Offset: "utc"},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices:    d.devices(),
	}
	if d.KVM {
		x.Type = "kvm"
		x.CPU = &libvirtxml.DomainCPU{Mode: "host-passthrough"}
	}
	return x.Marshal()
}

func (d *Domain) os() *libvirtxml.DomainOS {
	return &libvirtxml.DomainOS{
		Type:    &libvirtxml.DomainOSType{Arch: "x86_64", Type: "hvm"},
		Kernel:  d.Boot.Kernel,
		Initrd:  d.Boot.Initrd,
		Cmdline: d.Boot.Cmdline,
	}
}

func (d *Domain) sysinfo() []libvirtxml.DomainSysInfo {
	if len(d.FwCfg) == 0 {
		return nil
	}
	var fw libvirtxml.DomainSysInfoFWCfg
	for _, f := range d.FwCfg {
		fw.Entry = append(fw.Entry, libvirtxml.DomainSysInfoEntry{Name: FwCfgPrefix + f.Name, File: f.File})
	}
	return []libvirtxml.DomainSysInfo{{FWCfg: &fw}}
}

func (d *Domain) devices() *libvirtxml.DomainDeviceList {
	dev := &libvirtxml.DomainDeviceList{
		// A pty, so `virsh console` works too; the log gets every byte either way.
		Serials: []libvirtxml.DomainSerial{{
			Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
			Log:    &libvirtxml.DomainChardevLog{File: d.ConsoleLog, Append: "off"},
		}},
		// No balloon: guests get the memory they are given, and TCG boots one device sooner.
		MemBalloon: &libvirtxml.DomainMemBalloon{Model: "none"},
	}
	for i, k := range d.Disks {
		x := k.xml()
		if i == 0 && d.Boot.Kernel == "" {
			x.Boot = &libvirtxml.DomainDeviceBoot{Order: 1}
		}
		dev.Disks = append(dev.Disks, x)
	}
	for _, n := range d.NICs {
		dev.Interfaces = append(dev.Interfaces, n.xml())
	}
	return dev
}

func (k *Disk) xml() libvirtxml.DomainDisk {
	x := libvirtxml.DomainDisk{
		Device: "disk",
		Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: k.Format},
		Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: k.Path}},
		Target: &libvirtxml.DomainDiskTarget{Dev: k.Target, Bus: "virtio"},
	}
	if k.ReadOnly {
		x.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
	}
	if k.Base != "" {
		// The chain spelled out, so libvirt neither probes it nor chowns the shared base.
		x.BackingStore = &libvirtxml.DomainDiskBackingStore{
			Format: &libvirtxml.DomainDiskFormat{Type: "qcow2"},
			Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{
				File:     k.Base,
				SecLabel: []libvirtxml.DomainDeviceSecLabel{{Model: "dac", Relabel: "no"}},
			}},
			BackingStore: &libvirtxml.DomainDiskBackingStore{}, // the base has none
		}
	}
	return x
}

func (n *NIC) xml() libvirtxml.DomainInterface {
	x := libvirtxml.DomainInterface{
		MAC:   &libvirtxml.DomainInterfaceMAC{Address: n.MAC},
		Model: &libvirtxml.DomainInterfaceModel{Type: "virtio"},
	}
	if n.Bridge != "" {
		x.Source = &libvirtxml.DomainInterfaceSource{Bridge: &libvirtxml.DomainInterfaceSourceBridge{Bridge: n.Bridge}}
	} else {
		x.Source = &libvirtxml.DomainInterfaceSource{Ethernet: &libvirtxml.DomainInterfaceSourceEthernet{}}
	}
	if n.Tap != "" {
		x.Target = &libvirtxml.DomainInterfaceTarget{Dev: n.Tap}
	}
	if n.MTU != 0 {
		x.MTU = &libvirtxml.DomainInterfaceMTU{Size: n.MTU}
	}
	if n.Isolated {
		x.PortOptions = &libvirtxml.DomainInterfacePortOptions{Isolated: "yes"}
	}
	return x
}

// metaAny is Meta in any namespace: DomainGetMetadata returns the element without its own.
type metaAny struct {
	XMLName xml.Name       `xml:"vm"`
	Tenant  enjin.TenantID `xml:"tenant"`
	VM      string         `xml:"name"`
	Node    enjin.NodeID   `xml:"node"`
	Owns    []string       `xml:"owns,omitempty"`
	Host    bool           `xml:"host,omitempty"`
}

// metaOf reads enjin's element as DomainGetMetadata returns it.
func metaOf(s string) (Meta, error) {
	var m metaAny
	if err := xml.Unmarshal([]byte(s), &m); err != nil {
		return Meta{}, fmt.Errorf("enjin metadata: %w", err)
	}
	m.XMLName = xml.Name{}
	return Meta(m), nil
}
