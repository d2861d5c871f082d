package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// nodeRow is what the node table shows of GET /v1/nodes.
type nodeRow struct {
	ID          string     `json:"id"`
	Ring        int        `json:"ring"`
	Label       string     `json:"label"`
	Supervision string     `json:"supervision_strategy"`
	State       string     `json:"state"`
	LastObsAt   *time.Time `json:"last_observation_at"`
}

func nodesCmd(g *globals) *cobra.Command {
	var ring, state string
	c := &cobra.Command{
		Use:   "nodes",
		Short: "list nodes and their state (up, suspect, down)",
		Example: `  enjin nodes
  enjin nodes --ring 1 --state up -o json`,
		Args: argsBetween(0, 0, "no arguments"),
	}
	out := outputFlag(c)
	c.Flags().StringVar(&ring, "ring", "", "only nodes of this ring (0, 1, 2)")
	c.Flags().StringVar(&state, "state", "", "only nodes in this state (unknown, up, suspect, down)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		q := url.Values{}
		if ring != "" {
			q.Set("ring", ring)
		}
		if state != "" {
			q.Set("state", state)
		}
		var raw json.RawMessage
		path := "/v1/nodes"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		if err := cl.get(c.Context(), path, &raw); err != nil {
			return err
		}
		if out.json() {
			return writeRaw(c.OutOrStdout(), raw)
		}
		return printNodes(c.OutOrStdout(), raw)
	}
	c.AddCommand(decommissionCmd(g), nodesGrowCmd(g), nodesConsoleCmd(g))
	return c
}

func printNodes(w io.Writer, raw json.RawMessage) error {
	var resp struct{ Nodes []nodeRow }
	if err := json.Unmarshal(raw, &resp); err != nil {
		return err
	}
	tw := newTable(w, "ID\tRING\tSTATE\tSTRATEGY\tLAST SEEN\tLABEL")
	for _, n := range resp.Nodes {
		seen := "never"
		if n.LastObsAt != nil {
			seen = n.LastObsAt.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", n.ID, n.Ring, n.State, n.Supervision, seen, n.Label)
	}
	return tw.Flush()
}

// decommissionCmd retires a ring 1 node for good: ring 0 revokes its bus credentials (its
// connection closes), refuses its observations from then on, and never judges it again.
func decommissionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "decommission NODE",
		Short:   "retire a ring 1 node: its credentials revoked, its observations refused",
		Example: "  enjin nodes decommission edge-1",
		Args:    argsBetween(1, 1, "NODE"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := deleteVersioned(c.Context(), cl, "/v1/nodes/"+url.PathEscape(args[0])); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "decommissioned %s: its credentials are revoked\n", args[0])
			return nil
		},
	}
}
