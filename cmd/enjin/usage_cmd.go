package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

// compartmentsUsageCmd shows what the nodes in a compartment and below it use.
func compartmentsUsageCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "usage ID", Short: "what the nodes in a compartment and below it use: CPU, memory, instances (from their signed heartbeats)",
		Example: "  enjin compartments usage 5f0c1c9e-8f43-4c51-9a59-2b1f0a3c7d11 -o json", Args: argsBetween(1, 1, "a compartment ID")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := cl.get(c.Context(), compartmentPath(args[0])+"/usage", &raw); err != nil {
			return err
		}
		if out.json() {
			return writeRaw(c.OutOrStdout(), raw)
		}
		var u struct {
			Nodes, Reporting, Instances int
			Up                          int     `json:"nodes_up"`
			CPU                         float64 `json:"cpu"`
			Mem                         uint64  `json:"mem_bytes"`
			VM                          int64   `json:"vm_memory_mb"`
			ByNode                      []struct {
				Node, State string
				CPU         float64 `json:"cpu"`
				Mem         uint64  `json:"mem_bytes"`
				Instances   int
			} `json:"by_node"`
		}
		if err := json.Unmarshal(raw, &u); err != nil {
			return err
		}
		tw := newTable(c.OutOrStdout(), "NODE\tSTATE\tCPU\tMEM\tINSTANCES")
		for _, n := range u.ByNode {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s\t%d\n", n.Node, n.State, n.CPU, mebibytes(n.Mem), n.Instances)
		}
		fmt.Fprintf(tw, "all %d (%d up, %d reporting)\t\t%.2f\t%s\t%d\n", u.Nodes, u.Up, u.Reporting, u.CPU, mebibytes(u.Mem), u.Instances)
		return tw.Flush()
	}
	return c
}
