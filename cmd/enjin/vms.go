package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"enjin"
	"enjin/services/inventory"
)

func vmsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "vms",
		Short: "virtual machines: create from an image and a machine type, start, stop, NICs, console",
		Long: `A tenant's virtual machines, addressed as TENANT/NAME. A VM runs on the ring 1 node hosting
its tenant, from an image (see enjin images) and a machine type (see enjin machine-types); it
signs its own heartbeats as a ring 2 node. Verbs that change a VM wait until its node has
carried the change out.`,
		Example: `  enjin vms create acme/vm1 --image guest --type small
  enjin vms ls acme
  enjin vms show acme/vm1 -o json
  enjin vms stop acme/vm1; enjin vms start acme/vm1; enjin vms reboot acme/vm1
  enjin vms nic add acme/vm1 --network net1 --ruleset web
  enjin vms console acme/vm1
  enjin vms destroy acme/vm1`,
	}
	c.AddCommand(vmCreateCmd(g), vmLsCmd(g), vmShowCmd(g), vmStateCmd(g, "start", enjin.VMRunning),
		vmStateCmd(g, "stop", enjin.VMStopped), vmRebootCmd(g), vmDestroyCmd(g), vmNICCmd(g), vmConsoleCmd(g))
	return c
}

// vmRef parses TENANT/NAME.
func vmRef(s string) (enjin.TenantID, string, error) {
	t, n, ok := strings.Cut(s, "/")
	if !ok || enjin.TenantID(t).Validate() != nil || !enjin.IsSlug(n) {
		return "", "", usagef("%q: want TENANT/NAME (slugs)", s)
	}
	return enjin.TenantID(t), n, nil
}

func vmPath(t enjin.TenantID, n string) string {
	return "/v1/tenants/" + url.PathEscape(string(t)) + "/vms/" + url.PathEscape(n)
}

// long sends in as JSON to a route that waits for a ring 1 node, with no client timeout, and
// decodes the answer into out.
func (c *client) long(ctx context.Context, method, path string, hdr http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
		if hdr == nil {
			hdr = http.Header{}
		}
		hdr.Set("Content-Type", "application/json")
	}
	resp, err := c.send(ctx, c.stream, method, path, hdr, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out)
}

// ifMatch is the If-Match of the object at path as it is now.
func (c *client) ifMatch(ctx context.Context, path string) (http.Header, error) {
	var cur struct {
		Version int64 `json:"version"`
	}
	if err := c.get(ctx, path, &cur); err != nil {
		return nil, err
	}
	return http.Header{"If-Match": {strconv.Quote(strconv.FormatInt(cur.Version, 10))}}, nil
}

func printVM(c *cobra.Command, o *format, vm inventory.VM) error {
	if o.json() {
		return writeJSON(c.OutOrStdout(), vm)
	}
	return printVMs(c.OutOrStdout(), vm)
}

func printVMs(w io.Writer, vms ...inventory.VM) error {
	tw := newTable(w, "VM\tSTATE\tWANTED\tTYPE\tIMAGE\tNODE\tNICS")
	for _, vm := range vms {
		printVMRow(tw, vm)
	}
	return tw.Flush()
}

func printVMRow(w io.Writer, vm inventory.VM) {
	var nics []string
	for _, n := range vm.Spec.NICs {
		nics = append(nics, n.MAC)
	}
	fmt.Fprintf(w, "%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\n", vm.Tenant, vm.Name, vm.ObservedState, vm.DesiredState, vm.MachineType,
		vm.Image, vm.Node, strings.Join(nics, ","))
}

func vmCreateCmd(g *globals) *cobra.Command {
	var in struct {
		image, typ, userData, router string
		networks, sshKeys            []string
		rulesets                     []string
	}
	c := &cobra.Command{Use: "create TENANT/NAME --image IMAGE --type TYPE", Short: "create and start a VM",
		Example: "  enjin vms create acme/vm1 --image guest --type small --ssh-key \"$(cat ~/.ssh/id_ed25519.pub)\"",
		Args:    argsBetween(1, 1, "TENANT/NAME")}
	out := outputFlag(c)
	c.Flags().StringVar(&in.image, "image", "", "the image: its id or name (the tenant's, else a public one)")
	c.Flags().StringVar(&in.typ, "type", "small", "the machine type (enjin machine-types)")
	c.Flags().StringArrayVar(&in.networks, "network", nil, "a tenant network to join besides the node's own, default (repeatable)")
	c.Flags().StringArrayVar(&in.rulesets, "ruleset", nil, "a rule set its NICs on tenant networks enforce (repeatable, in order)")
	c.Flags().StringVar(&in.router, "router", "", "one of its --network the VM routes for: the others there reach its other networks (and beyond) through it")
	c.Flags().StringArrayVar(&in.sshKeys, "ssh-key", nil, "an authorized key (repeatable)")
	c.Flags().StringVar(&in.userData, "user-data", "", "user data for the guest")
	c.RunE = func(c *cobra.Command, args []string) error {
		t, name, err := vmRef(args[0])
		if err != nil {
			return err
		}
		if in.image == "" {
			return usagef("vms create: --image is required")
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var vm inventory.VM
		body := map[string]any{"name": name, "image": in.image, "machine_type": in.typ, "networks": in.networks,
			"rulesets": in.rulesets, "router": in.router, "ssh_keys": in.sshKeys, "user_data": in.userData}
		if err := cl.long(c.Context(), "POST", "/v1/tenants/"+url.PathEscape(string(t))+"/vms", nil, body, &vm); err != nil {
			return err
		}
		return printVM(c, out, vm)
	}
	return c
}

func vmLsCmd(g *globals) *cobra.Command {
	return tenantLsCmd(g, "vms", "the tenant's VMs", func(w io.Writer, l struct{ VMs []inventory.VM }) error {
		return printVMs(w, l.VMs...)
	})
}

func vmShowCmd(g *globals) *cobra.Command {
	return showCmd(g, "a VM: its state, node, NICs", vmPath, func(w io.Writer, vm inventory.VM) error { return printVMs(w, vm) })
}

func vmStateCmd(g *globals, verb, state string) *cobra.Command {
	c := &cobra.Command{Use: verb + " TENANT/NAME", Short: verb + " a VM", Args: argsBetween(1, 1, "TENANT/NAME")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		return vmChange(c, g, out, args[0], "PATCH", "", map[string]string{"state": state})
	}
	return c
}

// vmChange sends a versioned change to a VM (path below its own) and prints what it became.
func vmChange(c *cobra.Command, g *globals, out *format, ref, method, sub string, body any) error {
	t, name, err := vmRef(ref)
	if err != nil {
		return err
	}
	cl, err := g.client()
	if err != nil {
		return err
	}
	hdr, err := cl.ifMatch(c.Context(), vmPath(t, name))
	if err != nil {
		return err
	}
	var vm inventory.VM
	if err := cl.long(c.Context(), method, vmPath(t, name)+sub, hdr, body, &vm); err != nil {
		return err
	}
	return printVM(c, out, vm)
}

func vmRebootCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "reboot TENANT/NAME", Short: "reboot a running VM", Args: argsBetween(1, 1, "TENANT/NAME")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		t, name, err := vmRef(args[0])
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var vm inventory.VM
		if err := cl.long(c.Context(), "POST", vmPath(t, name)+"/reboot", nil, nil, &vm); err != nil {
			return err
		}
		return printVM(c, out, vm)
	}
	return c
}

func vmDestroyCmd(g *globals) *cobra.Command {
	return removeCmd(g, "destroy", "destroy a VM: its domain, disks and taps (its volumes stay)", "destroyed", vmPath)
}

// removeCmd is a verb that deletes TENANT/NAME, found at path(TENANT, NAME), at the version
// it reads first (If-Match), waits as long as the ring 1 node takes, and says done.
func removeCmd(g *globals, verb, short, done string, path func(enjin.TenantID, string) string) *cobra.Command {
	return &cobra.Command{Use: verb + " TENANT/NAME", Short: short, Args: argsBetween(1, 1, "TENANT/NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			t, name, err := vmRef(args[0])
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			hdr, err := cl.ifMatch(c.Context(), path(t, name))
			if err != nil {
				return err
			}
			if err := cl.long(c.Context(), "DELETE", path(t, name), hdr, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%s %s/%s\n", done, t, name)
			return nil
		}}
}

func vmNICCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "nic", Short: "add or remove a VM's network interfaces (hot-plugged while it runs)"}
	add := &cobra.Command{Use: "add TENANT/NAME --network NET", Short: "add a NIC", Args: argsBetween(1, 1, "TENANT/NAME")}
	addOut := outputFlag(add)
	network := add.Flags().String("network", "default", "the network")
	rulesets := add.Flags().StringArray("ruleset", nil, "a rule set it enforces, on a tenant network (repeatable, in order)")
	add.RunE = func(c *cobra.Command, args []string) error {
		return vmChange(c, g, addOut, args[0], "POST", "/nics", map[string]any{"network": *network, "rulesets": *rulesets})
	}
	rm := &cobra.Command{Use: "rm TENANT/NAME MAC", Short: "remove the NIC with MAC", Args: argsBetween(2, 2, "TENANT/NAME MAC")}
	rmOut := outputFlag(rm)
	rm.RunE = func(c *cobra.Command, args []string) error {
		return vmChange(c, g, rmOut, args[0], "DELETE", "/nics/"+url.PathEscape(args[1]), nil)
	}
	c.AddCommand(add, rm)
	return c
}

func vmConsoleCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "console TENANT/NAME", Short: "the last part of a VM's serial console", Args: argsBetween(1, 1, "TENANT/NAME")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		t, name, err := vmRef(args[0])
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var con struct {
			Text string `json:"text"`
		}
		if err := cl.get(c.Context(), vmPath(t, name)+"/console", &con); err != nil {
			return err
		}
		if out.json() {
			return writeJSON(c.OutOrStdout(), con)
		}
		_, err = io.WriteString(c.OutOrStdout(), con.Text)
		return err
	}
	return c
}
