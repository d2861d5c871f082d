package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"enjin/services/inventory"
)

func placementsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "placements",
		Short: "list where every app and VM was placed, and what ring 0 keeps to move an app",
		Long: `List where every app and VM was placed, and when; for an app, the release ring 0 keeps to
re-place it if its host goes down (KEPT; "-": none yet, or its package is too big) and, while a
re-placed app has yet to run on its new host, the host it moved from. An app whose instances
are spread over hosts has a "replica" row for each host beside its home. 'enjin verify' checks
the signed bid stored with each placement.`,
		Args: argsBetween(0, 0, "no arguments"),
	}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		l, written, err := getList[struct{ Placements []inventory.Placement }](c, cl, out, "/v1/placements")
		if err != nil || written {
			return err
		}
		tw := newTable(c.OutOrStdout(), "KIND\tNAME\tNODE\tPLACED\tKEPT\tMOVED FROM")
		for _, p := range l.Placements {
			kept, from := "-", "-"
			if p.KeptRelease > 0 {
				kept = fmt.Sprintf("release %d", p.KeptRelease)
			}
			kind := p.Kind
			if p.Kind != "app" || p.Replica {
				kept = ""
			}
			if p.Replica { // a host beside the app's home running a share of its instances
				kind = "replica"
			}
			if p.MovedFrom != "" {
				from = string(p.MovedFrom)
			}
			fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s ago\t%s\t%s\n", kind, p.Tenant, p.App, p.Node,
				time.Since(p.PlacedAt).Round(time.Second), kept, from)
		}
		return tw.Flush()
	}
	return c
}
