package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"enjin"
	"enjin/services/inventory"
)

func tenantsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "tenants",
		Short: "list, create, show and delete tenants; issue a tenant's own token",
		Example: `  enjin tenants create acme
  enjin tenants ls
  enjin tenants token acme > acme.token`,
	}
	c.AddCommand(tenantsLsCmd(g), tenantsCreateCmd(g), tenantsShowCmd(g), tenantsDeleteCmd(g), tenantsTokenCmd(g))
	return c
}

// tenantArg reads the one TENANT argument.
func tenantArg(c *cobra.Command, args []string) (enjin.TenantID, error) {
	t := enjin.TenantID(args[0])
	if err := t.Validate(); err != nil {
		return "", usagef("%s: %q: want a tenant name (a slug)", name(c), args[0])
	}
	return t, nil
}

func tenantPath(t enjin.TenantID) string { return "/v1/tenants/" + url.PathEscape(string(t)) }

func tenantsLsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "ls", Short: "list tenants and the ring 1 nodes hosting them", Args: argsBetween(0, 0, "no arguments")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		r, written, err := getList[struct{ Tenants []inventory.Tenant }](c, cl, out, "/v1/tenants")
		if err != nil || written {
			return err
		}
		tw := newTable(c.OutOrStdout(), "TENANT\tHOSTS")
		for _, t := range r.Tenants {
			fmt.Fprintf(tw, "%s\t%s\n", t.ID, hostList(t))
		}
		return tw.Flush()
	}
	return c
}

func hostList(t inventory.Tenant) string {
	var hs []string
	for _, h := range t.Hosts {
		hs = append(hs, string(h.Node))
	}
	return strings.Join(hs, ",")
}

func tenantsCreateCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "create TENANT", Short: "create a tenant: its NATS account, hosted by a ring 1 node", Args: argsBetween(1, 1, "a tenant name")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		t, err := tenantArg(c, args)
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var res json.RawMessage
		if err := cl.do(c.Context(), "POST", "/v1/tenants", nil, map[string]string{"name": string(t)}, &res); err != nil {
			return err
		}
		if out.json() {
			return writeRaw(c.OutOrStdout(), res)
		}
		_, err = fmt.Fprintf(c.OutOrStdout(), "created tenant %s\n", t)
		return err
	}
	return c
}

func tenantsShowCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "show TENANT", Short: "show a tenant and its hosts", Args: argsBetween(1, 1, "a tenant name")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		t, err := tenantArg(c, args)
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := cl.get(c.Context(), tenantPath(t), &raw); err != nil {
			return err
		}
		if out.json() {
			return writeRaw(c.OutOrStdout(), raw)
		}
		var tn inventory.Tenant
		if err := json.Unmarshal(raw, &tn); err != nil {
			return err
		}
		return showTenant(c.OutOrStdout(), tn)
	}
	return c
}

func showTenant(w io.Writer, t inventory.Tenant) error {
	tw := newTable(w, "FIELD\tVALUE")
	fmt.Fprintf(tw, "id\t%s\nhosts\t%s\nversion\t%d\ncreated\t%s\n", t.ID, hostList(t), t.Version, t.CreatedAt.Local().Format(time.DateTime))
	for _, h := range t.Hosts {
		fmt.Fprintf(tw, "scoped key on %s\t%s\n", h.Node, h.ScopedPub)
	}
	return tw.Flush()
}

func tenantsDeleteCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "delete TENANT", Short: "delete a tenant: revoke its credentials, disable its account, destroy its apps", Args: argsBetween(1, 1, "a tenant name")}
	c.RunE = func(c *cobra.Command, args []string) error {
		t, err := tenantArg(c, args)
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		if err := deleteVersioned(c.Context(), cl, tenantPath(t)); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.OutOrStdout(), "deleted tenant %s: its credentials are revoked and its account disabled\n", t)
		return err
	}
	return c
}

func tenantsTokenCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:     "token TENANT",
		Short:   "issue a bearer token that speaks for the tenant, for its own apps only",
		Example: "  enjin tenants token acme > acme.token\n  enjin apps ps acme/hello --token-file acme.token --api http://127.0.0.1:7070",
		Args:    argsBetween(1, 1, "a tenant name"),
	}
	c.RunE = func(c *cobra.Command, args []string) error {
		t, err := tenantArg(c, args)
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var tok struct {
			Token string `json:"token"`
		}
		if err := cl.do(c.Context(), "POST", tenantPath(t)+"/tokens", nil, map[string]string{"name": "cli"}, &tok); err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.OutOrStdout(), tok.Token)
		return err
	}
	return c
}
