package main

import (
	"fmt"
	"io"
	"net/url"

	"github.com/spf13/cobra"

	"enjin"
	"enjin/services/inventory"
)

func networksCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "networks",
		Short: "a tenant's networks: L2 segments with their own addresses (create, ls, show, delete)",
		Long: `A tenant's networks, addressed as TENANT/NAME. Each is an L2 segment with a VXLAN id of its
own, an IPv4 block (not overlapping the tenant's other networks; other tenants may use the
same addresses), an optional IPv6 /64, and DHCP if asked. Ring 0 hands out the addresses:
never one twice.`,
		Example: `  enjin networks create acme/net1 --cidr4 100.77.0.0/24 --prefix6 fd00:77::/64 --dhcp
  enjin networks ls acme
  enjin networks show acme/net1 -o json
  enjin networks delete acme/net1`,
	}
	c.AddCommand(netCreateCmd(g), netLsCmd(g), netShowCmd(g), netDeleteCmd(g))
	return c
}

func netPath(t enjin.TenantID, n string) string {
	return "/v1/tenants/" + url.PathEscape(string(t)) + "/networks/" + url.PathEscape(n)
}

func printNetworks(w io.Writer, ns ...inventory.Network) error {
	tw := newTable(w, "NETWORK\tVNI\tCIDR4\tGATEWAY\tPREFIX6\tDHCP\tNAT")
	for _, n := range ns {
		p6 := "-"
		if n.Prefix6.IsValid() {
			p6 = n.Prefix6.String()
		}
		fmt.Fprintf(tw, "%s/%s\t%d\t%s\t%s\t%s\t%t\t%t\n", n.Tenant, n.Name, n.VNI, n.CIDR4, n.Gateway4, p6, n.DHCP, n.NAT)
	}
	return tw.Flush()
}

func netCreateCmd(g *globals) *cobra.Command {
	var in struct {
		cidr4, prefix6, gateway string
		dhcp, nat               bool
	}
	c := &cobra.Command{Use: "create TENANT/NAME --cidr4 BLOCK", Short: "create a network", Args: argsBetween(1, 1, "TENANT/NAME")}
	out := outputFlag(c)
	f := c.Flags()
	f.StringVar(&in.cidr4, "cidr4", "", "its IPv4 block, /8 to /29 (such as 100.77.0.0/24)")
	f.StringVar(&in.prefix6, "prefix6", "", "its IPv6 /64, if any")
	f.StringVar(&in.gateway, "gateway", "", "its gateway address (default: the block's first host address)")
	f.BoolVar(&in.dhcp, "dhcp", false, "answer DHCP on it: each host's server offers each NIC its own address, and no other MAC anything")
	f.BoolVar(&in.nat, "nat", false, "reach beyond it through ring 1's NAT gateway at its gateway address (IPv4; what each port's rule sets let out)")
	c.RunE = func(c *cobra.Command, args []string) error {
		t, name, err := vmRef(args[0])
		if err != nil {
			return err
		}
		if in.cidr4 == "" {
			return usagef("networks create: --cidr4 is required")
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var n inventory.Network
		body := map[string]any{"name": name, "cidr4": in.cidr4, "dhcp": in.dhcp, "nat": in.nat}
		if in.prefix6 != "" {
			body["prefix6"] = in.prefix6
		}
		if in.gateway != "" {
			body["gateway"] = in.gateway
		}
		if err := cl.do(c.Context(), "POST", "/v1/tenants/"+url.PathEscape(string(t))+"/networks", nil, body, &n); err != nil {
			return err
		}
		if out.json() {
			return writeJSON(c.OutOrStdout(), n)
		}
		return printNetworks(c.OutOrStdout(), n)
	}
	return c
}

func netLsCmd(g *globals) *cobra.Command {
	return tenantLsCmd(g, "networks", "the tenant's networks", func(w io.Writer, l struct{ Networks []inventory.Network }) error {
		return printNetworks(w, l.Networks...)
	})
}

func netShowCmd(g *globals) *cobra.Command {
	return showCmd(g, "a network", netPath, func(w io.Writer, n inventory.Network) error { return printNetworks(w, n) })
}

func netDeleteCmd(g *globals) *cobra.Command {
	return removeCmd(g, "delete", "delete a network without ports", "deleted", netPath)
}
