package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"enjin"
	"enjin/services/inventory"
)

func rulesetsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "rulesets",
		Short: "a tenant's firewall rule sets, which NICs on its networks enforce (create, ls, show, update, delete)",
		Long: `A tenant's firewall rule sets, addressed as TENANT/NAME: ordered rules that a VM's NICs on the
tenant's networks enforce when they name the set (vms create --ruleset, vms nic add --ruleset).
A NIC with rule sets takes in only what a rule accepts, and sends all but what a rule drops;
replies always pass. A rule, as one argument:

  DIRECTION PROTOCOL [PORTS] [from|to REMOTE] ACTION [rate N]

DIRECTION is in or out; PROTOCOL tcp, udp, icmp or any; PORTS a port or a range (8000-8100);
REMOTE a block (100.64.0.0/10), net:NAME (one of the tenant's networks: its blocks) or rs:NAME
(the ports that enforce one of the tenant's rule sets: their addresses); ACTION accept or
drop; rate N caps new connections a second from one address (accepting rules in).`,
		Example: `  enjin rulesets create acme/web --rule "in tcp 80 accept" --rule "in tcp 22 from net:admin accept rate 5"
  enjin rulesets ls acme
  enjin rulesets show acme/web -o json
  enjin rulesets update acme/web --rule "in tcp 80 accept" --rule "in tcp 443 accept"
  enjin rulesets delete acme/web`,
	}
	c.AddCommand(rsWriteCmd(g, true), rsLsCmd(g), rsShowCmd(g), rsWriteCmd(g, false),
		removeCmd(g, "delete", "delete a rule set no NIC names", "deleted", rsPath))
	return c
}

func rsPath(t enjin.TenantID, n string) string {
	return "/v1/tenants/" + url.PathEscape(string(t)) + "/rulesets/" + url.PathEscape(n)
}

// parseRule reads a rule as the command line writes it.
func parseRule(s string) (enjin.Rule, error) {
	f := strings.Fields(s)
	bad := func(why string) (enjin.Rule, error) {
		return enjin.Rule{}, usagef("rule %q: %s; want DIRECTION PROTOCOL [PORTS] [from|to REMOTE] ACTION [rate N]", s, why)
	}
	if len(f) < 3 {
		return bad("too short")
	}
	r := enjin.Rule{Direction: f[0], Protocol: f[1]}
	f = f[2:]
	if len(f) > 0 && f[0] != "from" && f[0] != "to" && f[0] != "accept" && f[0] != "drop" {
		r.Ports, f = f[0], f[1:]
	}
	if len(f) > 1 && (f[0] == "from" || f[0] == "to") {
		if (f[0] == "from") != (r.Direction == "in") {
			return bad(`a rule in is "from" a remote, a rule out "to" one`)
		}
		if n, ok := strings.CutPrefix(f[1], "net:"); ok {
			r.RemoteNetwork = n
		} else if n, ok := strings.CutPrefix(f[1], "rs:"); ok {
			r.RemoteRuleset = n
		} else {
			r.Remote = f[1]
		}
		f = f[2:]
	}
	if len(f) == 0 {
		return bad("no action")
	}
	r.Action, f = f[0], f[1:]
	if len(f) == 2 && f[0] == "rate" {
		n, err := strconv.Atoi(f[1])
		if err != nil {
			return bad("rate: want a number")
		}
		r.Rate, f = n, nil
	}
	if len(f) > 0 {
		return bad("unexpected " + strconv.Quote(f[0]))
	}
	if err := r.Validate(); err != nil {
		return bad(err.Error())
	}
	return r, nil
}

func parseRules(ss []string) ([]enjin.Rule, error) {
	out := []enjin.Rule{}
	for _, s := range ss {
		r, err := parseRule(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// ruleText writes r as parseRule reads it.
func ruleText(r enjin.Rule) string {
	parts := []string{r.Direction, r.Protocol}
	if r.Ports != "" {
		parts = append(parts, r.Ports)
	}
	side := map[string]string{"in": "from", "out": "to"}[r.Direction]
	if r.Remote != "" {
		parts = append(parts, side, r.Remote)
	} else if r.RemoteNetwork != "" {
		parts = append(parts, side, "net:"+r.RemoteNetwork)
	} else if r.RemoteRuleset != "" {
		parts = append(parts, side, "rs:"+r.RemoteRuleset)
	}
	parts = append(parts, r.Action)
	if r.Rate > 0 {
		parts = append(parts, "rate", strconv.Itoa(r.Rate))
	}
	return strings.Join(parts, " ")
}

func printRulesets(w io.Writer, rs ...inventory.Ruleset) error {
	tw := newTable(w, "RULESET\tVERSION\tRULES")
	for _, r := range rs {
		var texts []string
		for _, rule := range r.Rules {
			texts = append(texts, ruleText(rule))
		}
		fmt.Fprintf(tw, "%s/%s\t%d\t%s\n", r.Tenant, r.Name, r.Version, strings.Join(texts, "; "))
	}
	return tw.Flush()
}

// rsWriteCmd is `create` (a new rule set) or `update` (its rules replaced, at the version read
// first; the NICs naming it enforce them before the answer).
func rsWriteCmd(g *globals, create bool) *cobra.Command {
	c := &cobra.Command{Use: "update TENANT/NAME --rule RULE…", Short: "replace a rule set's rules; the NICs naming it enforce them before it returns",
		Args: argsBetween(1, 1, "TENANT/NAME")}
	if create {
		c.Use, c.Short = "create TENANT/NAME --rule RULE…", "create a rule set"
	}
	out := outputFlag(c)
	var rules []string
	c.Flags().StringArrayVar(&rules, "rule", nil, `a rule, in order (repeatable), such as "in tcp 80 accept"; none: an empty set`)
	c.RunE = func(c *cobra.Command, args []string) error {
		t, name, err := vmRef(args[0])
		if err != nil {
			return err
		}
		rs, err := parseRules(rules)
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var r inventory.Ruleset
		if create {
			err = cl.do(c.Context(), "POST", "/v1/tenants/"+url.PathEscape(string(t))+"/rulesets", nil, map[string]any{"name": name, "rules": rs}, &r)
		} else {
			var hdr http.Header
			if hdr, err = cl.ifMatch(c.Context(), rsPath(t, name)); err == nil {
				err = cl.long(c.Context(), "PUT", rsPath(t, name), hdr, map[string]any{"rules": rs}, &r)
			}
		}
		if err != nil {
			return err
		}
		if out.json() {
			return writeJSON(c.OutOrStdout(), r)
		}
		return printRulesets(c.OutOrStdout(), r)
	}
	return c
}

func rsLsCmd(g *globals) *cobra.Command {
	return tenantLsCmd(g, "rulesets", "the tenant's rule sets", func(w io.Writer, l struct{ Rulesets []inventory.Ruleset }) error {
		return printRulesets(w, l.Rulesets...)
	})
}

func rsShowCmd(g *globals) *cobra.Command {
	return showCmd(g, "a rule set, one rule a line", rsPath, func(w io.Writer, r inventory.Ruleset) error {
		tw := newTable(w, "#\tRULE")
		for i, rule := range r.Rules {
			fmt.Fprintf(tw, "%d\t%s\n", i+1, ruleText(rule))
		}
		return tw.Flush()
	})
}
