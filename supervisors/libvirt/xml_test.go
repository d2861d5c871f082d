package libvirt_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"enjin/supervisors/libvirt"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// specs are the golden cases: each one's XML is testdata/<name>.xml.
var specs = map[string]libvirt.Domain{
	// A tenant VM booting its image through an overlay, on a bridge, TCG.
	"disk-boot": {
		Name: "enjin-t1-web", VCPUs: 2, MemoryMiB: 512,
		Disks: []libvirt.Disk{{Path: "/var/lib/enjin/vms/web/root.qcow2", Format: "qcow2", Target: "vda",
			Base: "/var/lib/enjin/images/debian-12.qcow2", Owned: true}},
		NICs:       []libvirt.NIC{{MAC: "52:54:00:12:34:56", Bridge: "enjbr-t1", Isolated: true}},
		ConsoleLog: "/var/log/enjin/vms/web.log",
		Meta:       libvirt.Meta{Tenant: "t1", VM: "web", Node: "n-web"},
	},
	// A ring 1 host as a VM: kernel and initramfs, a read-only raw disk, a data volume,
	// a named tap, credentials by fw_cfg, KVM.
	"kernel-boot": {
		Name: "enjin-ring1-h2", UUID: "6f1b1c2e-6d2a-4f4e-9a53-2f1f2b3c4d5e", KVM: true, VCPUs: 4, MemoryMiB: 2048,
		Boot: libvirt.Boot{Kernel: "/var/lib/enjin/boot/vmlinuz", Initrd: "/var/lib/enjin/boot/initrd.img",
			Cmdline: "console=ttyS0 quiet"},
		Disks: []libvirt.Disk{
			{Path: "/var/lib/enjin/images/tools.raw", Format: "raw", Target: "vda", ReadOnly: true},
			{Path: "/var/lib/enjin/vms/h2/data.qcow2", Format: "qcow2", Target: "vdb", Owned: true},
		},
		NICs:       []libvirt.NIC{{MAC: "52:54:00:ab:cd:ef", Tap: "enjtap-h2"}, {MAC: "52:54:00:ab:cd:f0", Bridge: "enjbr0", Tap: "enjtap-h2b"}},
		ConsoleLog: "/var/log/enjin/vms/h2.log",
		Meta:       libvirt.Meta{Tenant: "ring0", VM: "h2", Node: "n-h2"},
		FwCfg: []libvirt.FwCfg{{Name: "meta", File: "/var/lib/enjin/vms/h2/meta.json"},
			{Name: "creds", File: "/var/lib/enjin/vms/h2/node.creds"}},
	},
}

func TestDomainXMLGolden(t *testing.T) {
	for name, d := range specs {
		t.Run(name, func(t *testing.T) {
			got, err := d.XML()
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".xml")
			if *update {
				if err := os.WriteFile(golden, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if got+"\n" != string(want) {
				t.Errorf("XML of %s differs from %s (run go test -update if the change is meant):\ngot:\n%s\nwant:\n%s",
					name, golden, got, want)
			}
			// It reads back as what it says.
			var x libvirtxml.Domain
			if err := x.Unmarshal(got); err != nil {
				t.Fatal(err)
			}
			if x.Name != d.Name || len(x.Devices.Disks) != len(d.Disks) || len(x.Devices.Interfaces) != len(d.NICs) {
				t.Errorf("read back: got name %s, %d disks, %d nics want %s, %d, %d",
					x.Name, len(x.Devices.Disks), len(x.Devices.Interfaces), d.Name, len(d.Disks), len(d.NICs))
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	ok := specs["disk-boot"]
	ok.Disks = append([]libvirt.Disk(nil), ok.Disks...)
	ok.NICs = append([]libvirt.NIC(nil), ok.NICs...)
	if err := ok.Validate(); err != nil {
		t.Fatalf("the golden spec: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(d *libvirt.Domain)
		want   string
	}{
		{"name with a slash", func(d *libvirt.Domain) { d.Name = "a/b" }, "name"},
		{"no memory", func(d *libvirt.Domain) { d.MemoryMiB = 0 }, "memory"},
		{"nothing to boot", func(d *libvirt.Domain) { d.Disks = nil }, "no kernel and no disk"},
		{"cmdline without kernel", func(d *libvirt.Domain) { d.Boot.Cmdline = "init=/bin/sh" }, "without a kernel"},
		{"relative disk", func(d *libvirt.Domain) { d.Disks[0].Path = "root.qcow2" }, "not absolute"},
		{"probed format", func(d *libvirt.Domain) { d.Disks[0].Format = "" }, "format"},
		{"base under raw", func(d *libvirt.Domain) { d.Disks[0].Format = "raw" }, "base"},
		{"ide target", func(d *libvirt.Domain) { d.Disks[0].Target = "hda" }, "target"},
		{"two vda", func(d *libvirt.Domain) { d.Disks = append(d.Disks, d.Disks[0]) }, "used twice"},
		{"multicast mac", func(d *libvirt.Domain) { d.NICs[0].MAC = "01:00:5e:00:00:01" }, "unicast"},
		{"nowhere to plug", func(d *libvirt.Domain) { d.NICs[0].Bridge = "" }, "neither bridge nor tap"},
		{"long bridge", func(d *libvirt.Domain) { d.NICs[0].Bridge = "enjin-bridge-too-long" }, "15 bytes"},
		{"vnet tap", func(d *libvirt.Domain) { d.NICs[0].Tap = "vnet7" }, "reserves"},
		{"no console", func(d *libvirt.Domain) { d.ConsoleLog = "" }, "console"},
		{"no tenant", func(d *libvirt.Domain) { d.Meta.Tenant = "" }, "tenant"},
		{"a ring 1 host's with a tenant", func(d *libvirt.Domain) { d.Meta.Host = true }, "tenant"},
		{"fw_cfg outside opt/enjin", func(d *libvirt.Domain) {
			d.FwCfg = []libvirt.FwCfg{{Name: "../etc/x", File: "/x"}}
		}, "fw_cfg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := ok
			d.Disks = append([]libvirt.Disk(nil), ok.Disks...)
			d.NICs = append([]libvirt.NIC(nil), ok.NICs...)
			tc.change(&d)
			err := d.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v want an error about %q", err, tc.want)
			}
			if _, xerr := d.XML(); xerr == nil {
				t.Fatal("XML accepted what Validate rejects")
			}
		})
	}
}
