package main

import (
	"encoding/json"
	"io"
	"net/url"

	"github.com/spf13/cobra"

	"enjin/rings"
)

// tenantLsCmd is `ls TENANT` of one of a tenant's collections (vms, volumes, networks, …):
// with -o json the API's answer as it is, else the table print draws from it.
func tenantLsCmd[L any](g *globals, coll, short string, print func(io.Writer, L) error) *cobra.Command {
	c := &cobra.Command{Use: "ls TENANT", Short: short, Args: argsBetween(1, 1, "TENANT")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		if rings.TenantID(args[0]).Validate() != nil {
			return usagef("%s ls: %q: want a tenant (a slug)", coll, args[0])
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := cl.get(c.Context(), "/v1/tenants/"+url.PathEscape(args[0])+"/"+coll, &raw); err != nil {
			return err
		}
		if out.json() {
			return writeRaw(c.OutOrStdout(), raw)
		}
		var l L
		if err := json.Unmarshal(raw, &l); err != nil {
			return err
		}
		return print(c.OutOrStdout(), l)
	}
	return c
}

// showCmd is `show TENANT/NAME` of what lives at path(TENANT, NAME): with -o json as the API
// says it, else as print writes it.
func showCmd[V any](g *globals, short string, path func(rings.TenantID, string) string, print func(io.Writer, V) error) *cobra.Command {
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
