package main

import (
	"encoding/json"
	"io"
	"net/url"

	"github.com/spf13/cobra"

	"enjin"
)

// getList reads the list at path: with -o json it writes the API's answer as it is and says
// so (written), else it decodes it into an L for a table.
func getList[L any](c *cobra.Command, cl *client, out *format, path string) (l L, written bool, err error) {
	var raw json.RawMessage
	if err := cl.get(c.Context(), path, &raw); err != nil {
		return l, false, err
	}
	if out.json() {
		return l, true, writeRaw(c.OutOrStdout(), raw)
	}
	return l, false, json.Unmarshal(raw, &l)
}

// tenantLsCmd is `ls TENANT` of one of a tenant's collections (vms, volumes, networks, …):
// with -o json the API's answer as it is, else the table print draws from it.
func tenantLsCmd[L any](g *globals, coll, short string, print func(io.Writer, L) error) *cobra.Command {
	c := &cobra.Command{Use: "ls TENANT", Short: short, Args: argsBetween(1, 1, "TENANT")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		if enjin.TenantID(args[0]).Validate() != nil {
			return usagef("%s ls: %q: want a tenant (a slug)", coll, args[0])
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		l, written, err := getList[L](c, cl, out, "/v1/tenants/"+url.PathEscape(args[0])+"/"+coll)
		if err != nil || written {
			return err
		}
		return print(c.OutOrStdout(), l)
	}
	return c
}

// showCmd is `show TENANT/NAME` of what lives at path(TENANT, NAME): with -o json as the API
// says it, else as print writes it.
func showCmd[V any](g *globals, short string, path func(enjin.TenantID, string) string, print func(io.Writer, V) error) *cobra.Command {
	c := &cobra.Command{Use: "show TENANT/NAME", Short: short, Args: argsBetween(1, 1, "TENANT/NAME")}
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
		var v V
		if err := cl.get(c.Context(), path(t, name), &v); err != nil {
			return err
		}
		if out.json() {
			return writeJSON(c.OutOrStdout(), v)
		}
		return print(c.OutOrStdout(), v)
	}
	return c
}
