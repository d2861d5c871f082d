package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"

	"github.com/spf13/cobra"

	"enjin"
	"enjin/services/inventory"
)

func volumesCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "volumes",
		Short: "a tenant's disks that outlive VMs: create, attach, detach, delete",
		Long: `A tenant's volumes, addressed as TENANT/NAME. A volume lives on one ring 1 node (the one
hosting its tenant); attached to a VM there, it is the guest's next free disk (vdb, vdc, …),
hot-plugged while the VM runs. Its data outlives every VM it was attached to.`,
		Example: `  enjin volumes create acme/data --size 10
  enjin volumes attach acme/data acme/vm1
  enjin volumes detach acme/data
  enjin volumes ls acme
  enjin volumes rm acme/data`,
	}
	c.AddCommand(volCreateCmd(g), volLsCmd(g), volAttachCmd(g, true), volAttachCmd(g, false), volRmCmd(g))
	return c
}

func volPath(t enjin.TenantID, n string) string {
	return "/v1/tenants/" + url.PathEscape(string(t)) + "/volumes/" + url.PathEscape(n)
}

func printVolumes(w io.Writer, vs ...inventory.Volume) error {
	tw := newTable(w, "VOLUME\tSIZE\tNODE\tATTACHED TO")
	for _, v := range vs {
		fmt.Fprintf(tw, "%s/%s\t%d GiB\t%s\t%s\n", v.Tenant, v.Name, v.SizeGB, v.Node, dash(v.VMName))
	}
	return tw.Flush()
}

func volCreateCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "create TENANT/NAME --size GIB", Short: "create a volume", Args: argsBetween(1, 1, "TENANT/NAME")}
	out := outputFlag(c)
	size := c.Flags().Int("size", 1, "size in GiB")
	c.RunE = func(c *cobra.Command, args []string) error {
		t, name, err := vmRef(args[0])
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var v inventory.Volume
		if err := cl.long(c.Context(), "POST", "/v1/tenants/"+url.PathEscape(string(t))+"/volumes", nil,
			map[string]any{"name": name, "size_gb": *size}, &v); err != nil {
			return err
		}
		if out.json() {
			return writeJSON(c.OutOrStdout(), v)
		}
		return printVolumes(c.OutOrStdout(), v)
	}
	return c
}

func volLsCmd(g *globals) *cobra.Command {
	return tenantLsCmd(g, "volumes", "the tenant's volumes", func(w io.Writer, l struct{ Volumes []inventory.Volume }) error {
		return printVolumes(w, l.Volumes...)
	})
}

// volAttachCmd is `attach TENANT/VOLUME TENANT/VM` or `detach TENANT/VOLUME`.
func volAttachCmd(g *globals, attach bool) *cobra.Command {
	c := &cobra.Command{Use: "detach TENANT/NAME", Short: "detach a volume from its VM", Args: argsBetween(1, 1, "TENANT/NAME")}
	if attach {
		c = &cobra.Command{Use: "attach TENANT/NAME TENANT/VM", Short: "attach a volume to a VM of the same tenant and node", Args: argsBetween(2, 2, "TENANT/NAME TENANT/VM")}
	}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		t, name, err := vmRef(args[0])
		if err != nil {
			return err
		}
		vm := ""
		if attach {
			vt, vn, err := vmRef(args[1])
			if err != nil {
				return err
			}
			if vt != t {
				return usagef("volumes attach: %s is not %s's", args[1], t)
			}
			vm = vn
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		hdr, err := cl.ifMatch(c.Context(), volPath(t, name))
		if err != nil {
			return err
		}
		var v inventory.Volume
		if err := cl.long(c.Context(), "PUT", volPath(t, name)+"/attachment", hdr, map[string]string{"vm": vm}, &v); err != nil {
			return err
		}
		if out.json() {
			return writeJSON(c.OutOrStdout(), v)
		}
		return printVolumes(c.OutOrStdout(), v)
	}
	return c
}

func volRmCmd(g *globals) *cobra.Command {
	return removeCmd(g, "rm", "delete a volume attached to no VM, and its data", "deleted", volPath)
}

func machineTypesCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "machine-types", Short: "the sizes VMs come in (ls, create)"}
	ls := &cobra.Command{Use: "ls", Short: "list machine types", Args: argsBetween(0, 0, "no arguments")}
	lsOut := outputFlag(ls)
	ls.RunE = func(c *cobra.Command, _ []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := cl.get(c.Context(), "/v1/machine-types", &raw); err != nil {
			return err
		}
		if lsOut.json() {
			return writeRaw(c.OutOrStdout(), raw)
		}
		var l struct {
			MachineTypes []inventory.MachineType `json:"machine_types"`
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			return err
		}
		tw := newTable(c.OutOrStdout(), "TYPE\tVCPUS\tMEMORY\tDISK")
		for _, m := range l.MachineTypes {
			fmt.Fprintf(tw, "%s\t%d\t%d MiB\t%d GiB\n", m.Name, m.VCPUs, m.MemoryMB, m.DiskGB)
		}
		return tw.Flush()
	}
	create := &cobra.Command{Use: "create NAME --vcpus N --memory MIB --disk GIB", Short: "add a machine type", Args: argsBetween(1, 1, "NAME")}
	vcpus := create.Flags().Int("vcpus", 1, "virtual CPUs")
	mem := create.Flags().Int("memory", 512, "memory in MiB")
	disk := create.Flags().Int("disk", 10, "root disk in GiB")
	create.RunE = func(c *cobra.Command, args []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		var m inventory.MachineType
		if err := cl.do(c.Context(), "POST", "/v1/machine-types", nil,
			map[string]any{"name": args[0], "vcpus": *vcpus, "memory_mb": *mem, "disk_gb": *disk}, &m); err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "created machine type %s: %d vCPUs, %d MiB, %d GiB\n", m.Name, m.VCPUs, m.MemoryMB, m.DiskGB)
		return nil
	}
	c.AddCommand(ls, create)
	return c
}
