package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"enjin/services/inventory"
)

func membersCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "members",
		Short: "list the ring 0 members alive and which one leads",
		Long: `List the ring 0 members that announced themselves in the last 30 s — each one's API and
broker — and mark the one that leads (liveness verdicts, promotions) with its fencing epoch.`,
		Args: argsBetween(0, 0, "no arguments"),
	}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		r, written, err := getList[struct{ Members []inventory.Ring0Member }](c, cl, out, "/v1/members")
		if err != nil || written {
			return err
		}
		var l struct {
			Epoch  int64  `json:"epoch"`
			Member string `json:"member"`
		}
		if err := cl.get(c.Context(), "/v1/leader", &l); err != nil {
			return err
		}
		tw := newTable(c.OutOrStdout(), "MEMBER\tAPI\tNATS\tSEEN\tLEADS")
		for _, m := range r.Members {
			leads := ""
			if m.Member == l.Member {
				leads = fmt.Sprintf("yes (epoch %d)", l.Epoch)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\n", m.Member, m.API, m.NATS, time.Since(m.Seen).Round(time.Second), leads)
		}
		return tw.Flush()
	}
	return c
}
