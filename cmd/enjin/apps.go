package main

import (
	"encoding/json"
	"enjin/services/appapi"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"enjin"
)

func appsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "apps",
		Short: "deploy tenants' apps and manage them",
		Long: `Deploy a directory with a Procfile (and an optional enjin.json) as an app, and manage it.
Every verb but deploy and ls names its app TENANT/APP.`,
		Example: `  enjin apps deploy /tmp/hello --tenant acme --name hello
  enjin apps deploy acme/hello /tmp/hello
  enjin apps ls acme
  enjin apps scale acme/hello web=3
  enjin apps ps acme/hello
  enjin apps env acme/hello GREETING=hi --unset DEBUG
  enjin apps releases acme/hello
  enjin apps rollback acme/hello 1
  enjin apps destroy acme/hello`,
	}
	c.AddCommand(deployCmd(g), appsLsCmd(g), psCmd(g), scaleCmd(g), envCmd(g), releasesCmd(g), rollbackCmd(g), destroyCmd(g), cronCmd(g))
	return c
}

// appRef parses TENANT/APP.
func appRef(s string) (enjin.TenantID, string, error) {
	t, a, ok := strings.Cut(s, "/")
	if !ok || enjin.TenantID(t).Validate() != nil || !enjin.IsSlug(a) {
		return "", "", usagef("%q: want TENANT/APP (slugs)", s)
	}
	return enjin.TenantID(t), a, nil
}

// appPath is the path of tenant t's app a, under which the meta API's own routes of an app
// are (its custom domains); the app operations' paths are appapi's (Op.Path).
func appPath(t enjin.TenantID, a string) string {
	return "/v1/tenants/" + url.PathEscape(string(t)) + "/apps/" + url.PathEscape(a)
}

// appCommand is the frame of a verb on one app: TENANT/APP is its first argument.
func appCommand(use, short string, min, max int, want string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: argsBetween(min, max, want)}
}

func appsLsCmd(g *globals) *cobra.Command {
	var tenant string
	c := &cobra.Command{Use: "ls TENANT", Short: "the tenant's apps", Example: "  enjin apps ls acme\n  enjin apps ls --tenant acme -o json", Args: argsBetween(0, 1, "TENANT")}
	out := outputFlag(c)
	c.Flags().StringVar(&tenant, "tenant", "", "the tenant (or the argument)")
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 1 && tenant != "" && args[0] != tenant {
			return usagef("apps ls: two tenants: %s and --tenant %s", args[0], tenant)
		}
		if len(args) == 1 {
			tenant = args[0]
		}
		if enjin.TenantID(tenant).Validate() != nil {
			return usagef("apps ls: want TENANT (a slug), as the argument or --tenant")
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		r, written, err := getList[appapi.AppList](c, cl, out, appapi.OpApps.Path(tenant))
		if err != nil || written {
			return err
		}
		tw := newTable(c.OutOrStdout(), "APP\tRELEASE\tPROCESSES\tNODE")
		for _, a := range r.Apps {
			node := a.Node
			if len(a.Nodes) > 1 { // spread: its home, then the others
				node += " (+" + strings.Join(slices.DeleteFunc(a.Nodes, func(n string) bool { return n == a.Node }), ",") + ")"
			}
			fmt.Fprintf(tw, "%s/%s\t%d\t%s\t%s\n", a.Tenant, a.Name, a.Release, counts(a.Instances), node)
		}
		return tw.Flush()
	}
	return c
}

// counts prints process counts as web=2 worker=1, sorted.
func counts(m map[string]int) string {
	var s []string
	for k, v := range m {
		s = append(s, k+"="+strconv.Itoa(v))
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

func psCmd(g *globals) *cobra.Command {
	c := appCommand("ps TENANT/APP", "the app's instances: type, release, address, state, restarts", 1, 1, "TENANT/APP")
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		t, a, err := appRef(args[0])
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := cl.get(c.Context(), appapi.OpInstances.Path(string(t), a), &raw); err != nil {
			return err
		}
		return printInstances(c.OutOrStdout(), raw, *out)
	}
	return c
}

func printInstances(w io.Writer, raw json.RawMessage, o format) error {
	if o.json() {
		return writeRaw(w, raw)
	}
	var r appapi.InstanceList
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	spread := slices.ContainsFunc(r.Instances, func(i appapi.InstanceInfo) bool { return i.Host != "" })
	head := "INSTANCE\tRELEASE\tADDRESS\tNETWORKS\tSTATE\tCPU\tMEM\tRESTARTS\tLAST EXIT\tID"
	if spread { // an app spread over hosts: each instance's host first
		head = "HOST\t" + head
	}
	tw := newTable(w, head)
	for _, i := range r.Instances {
		name := i.Name
		if name == "" {
			name = i.Type
		}
		if spread {
			fmt.Fprintf(tw, "%s\t", i.Host)
		}
		var nets []string
		for _, n := range i.Networks {
			nets = append(nets, n.Network+"="+strings.Join(n.Addresses, ","))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s:%d\t%s\t%s\t%.0f%%\t%s\t%d\t%s\t%s\n", name, i.Release, i.Address, i.Port, dash(strings.Join(nets, " ")),
			i.State, 100*i.CPU, mebibytes(i.MemBytes), i.Restarts, dash(i.Exit), i.ID)
	}
	return tw.Flush()
}

// mebibytes writes a byte count as MiB, one decimal below 10.
func mebibytes(b uint64) string {
	m := float64(b) / (1 << 20)
	if m < 10 {
		return fmt.Sprintf("%.1fM", m)
	}
	return fmt.Sprintf("%.0fM", m)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func scaleCmd(g *globals) *cobra.Command {
	c := appCommand("scale TENANT/APP TYPE=COUNT…", "run COUNT instances of a process type", 2, -1, "TENANT/APP TYPE=COUNT…")
	c.Example = "  enjin apps scale acme/hello web=3\n  enjin apps scale acme/hello web=2 worker=1"
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		t, a, err := appRef(args[0])
		if err != nil {
			return err
		}
		type scale struct {
			typ   string
			count int
		}
		var ss []scale
		for _, arg := range args[1:] {
			typ, n, ok := strings.Cut(arg, "=")
			count, err := strconv.Atoi(n)
			if !ok || err != nil || count < 0 || !enjin.IsSlug(typ) {
				return usagef("apps scale: %q: want TYPE=COUNT, such as web=3", arg)
			}
			ss = append(ss, scale{typ, count})
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		for _, s := range ss {
			if err := cl.do(c.Context(), "PUT", appapi.OpScale.Path(string(t), a, s.typ), nil, appapi.Scale{Instances: &s.count}, &raw); err != nil {
				return err
			}
		}
		return printInstances(c.OutOrStdout(), raw, *out)
	}
	return c
}

func releasesCmd(g *globals) *cobra.Command {
	return appReadCmd(g, "releases TENANT/APP", "the app's releases, newest last", appapi.OpReleases, func(w io.Writer, raw json.RawMessage) error {
		var r appapi.ReleaseList
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		tw := newTable(w, "RELEASE\tSTATUS\tDIGEST\tCREATED\tPROCESSES")
		for _, rel := range r.Releases {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", rel.Number, rel.Status, shortDigest(rel.Digest),
				rel.Created.Local().Format(time.DateTime), counts(rel.Manifest.Instances))
		}
		return tw.Flush()
	})
}

// appReadCmd is a command reading one of an app's resources (GET, operation op): as it came
// with -o json, else as table prints it.
func appReadCmd(g *globals, use, short string, op appapi.Op, table func(w io.Writer, raw json.RawMessage) error) *cobra.Command {
	c := appCommand(use, short, 1, 1, "TENANT/APP")
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		t, a, err := appRef(args[0])
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := cl.get(c.Context(), op.Path(string(t), a), &raw); err != nil {
			return err
		}
		if out.json() {
			return writeRaw(c.OutOrStdout(), raw)
		}
		return table(c.OutOrStdout(), raw)
	}
	return c
}

// shortDigest is sha256- and the first 12 hex digits, enough to tell releases apart.
func shortDigest(d string) string {
	if hex, ok := strings.CutPrefix(d, "sha256-"); ok && len(hex) > 12 {
		return "sha256-" + hex[:12]
	}
	return d
}

func rollbackCmd(g *globals) *cobra.Command {
	c := appCommand("rollback TENANT/APP RELEASE", "make an earlier release live again", 2, 2, "TENANT/APP RELEASE")
	c.Example = "  enjin apps rollback acme/hello 1"
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		t, a, err := appRef(args[0])
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 1 {
			return usagef("apps rollback: %q: want a release number", args[1])
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var rel appapi.Release
		if err := cl.do(c.Context(), "POST", appapi.OpRollback.Path(string(t), a), nil, appapi.Rollback{Release: n}, &rel); err != nil {
			return err
		}
		if out.json() {
			return writeJSON(c.OutOrStdout(), rel)
		}
		_, err = fmt.Fprintf(c.OutOrStdout(), "rolled back %s/%s: release %d (%s) is live\n", t, a, rel.Number, shortDigest(rel.Digest))
		return err
	}
	return c
}

func destroyCmd(g *globals) *cobra.Command {
	c := appCommand("destroy TENANT/APP", "stop every instance and delete the app", 1, 1, "TENANT/APP")
	c.RunE = func(c *cobra.Command, args []string) error {
		t, a, err := appRef(args[0])
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		if err := cl.do(c.Context(), "DELETE", appapi.OpDestroy.Path(string(t), a), nil, nil, nil); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.OutOrStdout(), "destroyed %s/%s\n", t, a)
		return err
	}
	return c
}
