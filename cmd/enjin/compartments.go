package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"enjin/services/inventory"
)

func compartmentsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "compartments",
		Short: "list, create, show and delete compartments (regions, sites, racks, …)",
		Example: `  enjin compartments create --type rack --label rack-1
  enjin compartments ls -o json`,
	}
	c.AddCommand(compartmentsLsCmd(g), compartmentsCreateCmd(g), compartmentsShowCmd(g), compartmentsDeleteCmd(g), compartmentsUsageCmd(g))
	return c
}

func compartmentPath(id string) string { return "/v1/compartments/" + url.PathEscape(id) }

func compartmentsLsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "ls", Short: "list compartments", Args: argsBetween(0, 0, "no arguments")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		r, written, err := getList[struct{ Compartments []inventory.Compartment }](c, cl, out, "/v1/compartments")
		if err != nil || written {
			return err
		}
		tw := newTable(c.OutOrStdout(), "ID\tTYPE\tRING\tLABEL\tPARENTS")
		for _, m := range r.Compartments {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", m.ID, m.Type, m.Ring, m.Label, strings.Join(m.Parents, ","))
		}
		return tw.Flush()
	}
	return c
}

func compartmentsCreateCmd(g *globals) *cobra.Command {
	var typ, label string
	var ring int
	var parents []string
	c := &cobra.Command{
		Use:     "create --type TYPE --label LABEL [--parent ID]…",
		Short:   "create a compartment",
		Example: "  enjin compartments create --type rack --label rack-1 --parent 0b7f…",
		Args:    argsBetween(0, 0, "no arguments"),
	}
	out := outputFlag(c)
	c.Flags().StringVar(&typ, "type", "", "kind of compartment: region, site, row, rack, power-feed, … (required)")
	c.Flags().StringVar(&label, "label", "", "human name (required)")
	c.Flags().IntVar(&ring, "ring", 0, "ring the compartment belongs to")
	c.Flags().StringArrayVar(&parents, "parent", nil, "id of a parent compartment (repeatable)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		if typ == "" || label == "" {
			return usagef("compartments create: --type and --label are required")
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		body := map[string]any{"ring": ring, "type": typ, "label": label, "parents": append([]string{}, parents...)}
		var m inventory.Compartment
		if err := cl.do(c.Context(), "POST", "/v1/compartments", nil, body, &m); err != nil {
			return err
		}
		if out.json() {
			return writeJSON(c.OutOrStdout(), m)
		}
		_, err = fmt.Fprintf(c.OutOrStdout(), "created compartment %s (%s %s)\n", m.ID, m.Type, m.Label)
		return err
	}
	return c
}

func compartmentsShowCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "show ID", Short: "show a compartment", Args: argsBetween(1, 1, "a compartment ID")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := cl.get(c.Context(), compartmentPath(args[0]), &raw); err != nil {
			return err
		}
		if out.json() {
			return writeRaw(c.OutOrStdout(), raw)
		}
		var m inventory.Compartment
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		return showCompartment(c.OutOrStdout(), m)
	}
	return c
}

func showCompartment(w io.Writer, m inventory.Compartment) error {
	tw := newTable(w, "FIELD\tVALUE")
	fmt.Fprintf(tw, "id\t%s\ntype\t%s\nring\t%d\nlabel\t%s\nparents\t%s\nversion\t%d\n",
		m.ID, m.Type, m.Ring, m.Label, strings.Join(m.Parents, ","), m.Version)
	fmt.Fprintf(tw, "created\t%s\nupdated\t%s\n", m.CreatedAt.Local().Format(time.DateTime), m.UpdatedAt.Local().Format(time.DateTime))
	return tw.Flush()
}

func compartmentsDeleteCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "delete ID", Short: "delete a compartment; nodes in it keep running, with none", Args: argsBetween(1, 1, "a compartment ID")}
	c.RunE = func(c *cobra.Command, args []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		if err := deleteVersioned(c.Context(), cl, compartmentPath(args[0])); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.OutOrStdout(), "deleted %s\n", args[0])
		return err
	}
	return c
}

// deleteVersioned deletes the object at path, conditional on the version just read: the API
// takes If-Match on writes to versioned objects and answers 409 to a stale one.
func deleteVersioned(ctx context.Context, cl *client, path string) error {
	var cur struct {
		Version int64 `json:"version"`
	}
	if err := cl.get(ctx, path, &cur); err != nil {
		return err
	}
	h := http.Header{"If-Match": {strconv.Quote(strconv.FormatInt(cur.Version, 10))}}
	return cl.do(ctx, "DELETE", path, h, nil, nil)
}
