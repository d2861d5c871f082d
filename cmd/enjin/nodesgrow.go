package main

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"enjin/services/inventory"
)

// nodesGrowCmd starts a new ring 1 host as a VM on a ring 1 node: the cloud growing itself.
func nodesGrowCmd(g *globals) *cobra.Command {
	var on, image, typ, label string
	c := &cobra.Command{
		Use:   "grow --on NODE --image IMAGE",
		Short: "start a new ring 1 host as a VM on a ring 1 node (it joins by itself)",
		Long: `Start a new ring 1 host as a VM on ring 1 node NODE (the libvirt strategy). Ring 0 registers
the node, hands the VM a one-time join token in its metadata, and the VM joins by itself and
heartbeats, signed, like any ring 1 host; it hosts apps (enjin apps deploy --node ID). The
image is a public kernel image built by deploy/guest-image.sh --ring1. Decommissioning the
node (enjin nodes decommission ID) destroys the VM.`,
		Example: `  deploy/guest-image.sh --ring1 var/ring1-image
  enjin images upload --kernel var/ring1-image/vmlinuz --initrd var/ring1-image/initrd.img --name ring1
  enjin machine-types create host --vcpus 2 --memory 1536 --disk 4
  enjin nodes grow --on ring1-local --image ring1 --type host`,
		Args: argsBetween(0, 0, "no arguments"),
	}
	out := outputFlag(c)
	c.Flags().StringVar(&on, "on", "", "the ring 1 node to run the VM on (required)")
	c.Flags().StringVar(&image, "image", "", "a public kernel image's id or name (required)")
	c.Flags().StringVar(&typ, "type", "small", "the machine type (enjin machine-types)")
	c.Flags().StringVar(&label, "label", "", "the new node's label (default: vm on NODE)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		if on == "" || image == "" {
			return usagef("nodes grow: --on and --image are required")
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var n inventory.Node
		body := map[string]any{"image": image, "machine_type": typ, "label": label}
		if err := cl.long(c.Context(), "POST", "/v1/nodes/"+url.PathEscape(on)+"/hosts", nil, body, &n); err != nil {
			return err
		}
		if out.json() {
			return writeJSON(c.OutOrStdout(), n)
		}
		fmt.Fprintf(c.OutOrStdout(), "ring 1 host %s started as a VM on %s; it joins by itself (enjin nodes, enjin nodes console %s)\n", n.ID, on, n.ID)
		return nil
	}
	return c
}

// nodesConsoleCmd prints the last part of a ring 1 host VM's serial console.
func nodesConsoleCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "console NODE", Short: "the last part of the serial console of a ring 1 host run as a VM",
		Args: argsBetween(1, 1, "NODE")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		var con struct {
			Text string `json:"text"`
		}
		if err := cl.get(c.Context(), "/v1/nodes/"+url.PathEscape(args[0])+"/console", &con); err != nil {
			return err
		}
		if out.json() {
			return writeJSON(c.OutOrStdout(), con)
		}
		fmt.Fprint(c.OutOrStdout(), con.Text)
		return nil
	}
	return c
}
