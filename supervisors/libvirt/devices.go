package libvirt

import (
	"encoding/xml"
	"fmt"
	"net"
	"slices"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// modify returns the flags that change the running guest, if there is one, and the
// persistent definition together.
func (d domain) modify() (uint32, error) {
	s, err := d.state()
	if err != nil {
		return 0, err
	}
	flags := golibvirt.DomainDeviceModifyConfig
	if s.active() {
		flags |= golibvirt.DomainDeviceModifyLive
	}
	return uint32(flags), nil
}

// device attaches (or detaches) one device given as XML.
func (c *Conn) device(name, what string, attach bool, dev func(domain) (string, error)) error {
	d, err := c.ours(name)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	x, err := dev(d)
	if err != nil {
		return fmt.Errorf("%s: domain %s: %w", what, name, err)
	}
	flags, err := d.modify()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	call := d.r.DomainDetachDeviceFlags
	if attach {
		call = d.r.DomainAttachDeviceFlags
	}
	if err := call(d.dom, x, flags); err != nil {
		return fmt.Errorf("%s: domain %s: %w", what, name, classify(err))
	}
	return nil
}

// AttachNIC plugs a NIC into the running guest (PCI hot-plug) and into its definition.
func (c *Conn) AttachNIC(name string, n NIC) error {
	return c.device(name, "attach nic "+n.MAC, true, func(domain) (string, error) {
		if err := n.validate(); err != nil {
			return "", err
		}
		x := n.xml()
		return x.Marshal()
	})
}

// DetachNIC unplugs the NIC with this MAC address from the definition and asks the running
// guest to release it; the guest's copy goes when the guest acknowledges the unplug (a
// guest without ACPI hot-plug support keeps it until it stops).
func (c *Conn) DetachNIC(name, mac string) error {
	return c.device(name, "detach nic "+mac, false, func(d domain) (string, error) {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return "", err
		}
		x, err := d.definition(golibvirt.DomainXMLInactive)
		if err != nil {
			return "", err
		}
		for _, i := range x.Devices.Interfaces {
			if i.MAC == nil {
				continue
			}
			if got, err := net.ParseMAC(i.MAC.Address); err == nil && slices.Equal(got, hw) {
				return i.Marshal()
			}
		}
		return "", fmt.Errorf("no nic %s: %w", mac, ErrNotFound)
	})
}

// AttachDisk plugs a disk into the running guest (PCI hot-plug) and into its definition. An
// Owned disk is recorded in the domain's metadata, so Undefine deletes it.
func (c *Conn) AttachDisk(name string, k Disk) error {
	err := c.device(name, "attach disk "+k.Target, true, func(domain) (string, error) {
		if err := k.validate(); err != nil {
			return "", err
		}
		x := k.xml()
		return x.Marshal()
	})
	if err != nil || !k.Owned {
		return err
	}
	d, err := c.ours(name)
	if err != nil {
		return fmt.Errorf("attach disk %s: %w", k.Target, err)
	}
	d.meta.Owns = append(d.meta.Owns, k.Path)
	return d.setMeta()
}

// setMeta writes d.meta into the definition and the running guest.
func (d domain) setMeta() error {
	md, err := xml.Marshal(d.meta)
	if err != nil {
		return fmt.Errorf("domain %s: metadata: %w", d.dom.Name, err)
	}
	flags, err := d.modify()
	if err != nil {
		return err
	}
	err = d.r.DomainSetMetadata(d.dom, int32(golibvirt.DomainMetadataElement),
		golibvirt.OptString{string(md)}, golibvirt.OptString{"enjin"}, golibvirt.OptString{Namespace},
		golibvirt.DomainModificationImpact(flags))
	if err != nil {
		return fmt.Errorf("domain %s: set metadata: %w", d.dom.Name, classify(err))
	}
	return nil
}

// DetachDisk unplugs the disk the guest sees as target (vdb, say) from the definition and
// asks the running guest to release it, as DetachNIC does. The file stays; an Owned one is
// deleted by Undefine.
func (c *Conn) DetachDisk(name, target string) error {
	return c.device(name, "detach disk "+target, false, func(d domain) (string, error) {
		x, err := d.definition(golibvirt.DomainXMLInactive)
		if err != nil {
			return "", err
		}
		for _, k := range x.Devices.Disks {
			if k.Target != nil && k.Target.Dev == target {
				return k.Marshal()
			}
		}
		return "", fmt.Errorf("no disk %s: %w", target, ErrNotFound)
	})
}

// XML is the domain's definition as libvirt has it: the running guest's when live is true
// (with the devices plugged in since it started), else the persistent one.
func (c *Conn) XML(name string, live bool) (string, error) {
	d, err := c.ours(name)
	if err != nil {
		return "", err
	}
	var flags golibvirt.DomainXMLFlags
	if !live {
		flags = golibvirt.DomainXMLInactive
	}
	s, err := d.r.DomainGetXMLDesc(d.dom, flags)
	if err != nil {
		return "", fmt.Errorf("domain %s: xml: %w", name, classify(err))
	}
	return s, nil
}
