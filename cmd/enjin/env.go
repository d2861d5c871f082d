package main

import (
	"encoding/json"
	"enjin/services/appapi"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"enjin"
)

func envCmd(g *globals) *cobra.Command {
	var reveal bool
	var unset []string
	c := &cobra.Command{
		Use:   "env TENANT/APP [KEY=VALUE…] [--unset KEY]…",
		Short: "show the app's environment, or change some of it (a new release)",
		Long: `With TENANT/APP alone, show the app's environment as KEY=VALUE lines; values are masked
unless --reveal is given. With KEY=VALUE arguments or --unset, change those keys and leave the
others as they are: that makes a new release.`,
		Example: `  enjin apps env acme/hello
  enjin apps env acme/hello --reveal
  enjin apps env acme/hello GREETING=hi LEVEL=debug --unset OLD`,
		Args: argsBetween(1, -1, "TENANT/APP [KEY=VALUE…]"),
	}
	out := outputFlag(c)
	c.Flags().BoolVar(&reveal, "reveal", false, "show the values instead of masking them")
	c.Flags().StringArrayVar(&unset, "unset", nil, "remove KEY from the environment (repeatable)")
	c.RunE = func(c *cobra.Command, args []string) error {
		t, a, err := appRef(args[0])
		if err != nil {
			return err
		}
		if len(args) == 1 && len(unset) == 0 {
			return showEnv(c, g, t, a, reveal, *out)
		}
		if reveal {
			return usagef("apps env: --reveal shows the environment; it takes no changes")
		}
		p, err := parseEnvChange(args[1:], unset)
		if err != nil {
			return err
		}
		return changeEnv(c, g, t, a, p, *out)
	}
	return c
}

// parseEnvChange reads KEY=VALUE arguments and --unset keys into a patch.
func parseEnvChange(set, unset []string) (appapi.EnvPatch, error) {
	p := appapi.EnvPatch{Set: map[string]string{}, Unset: []string{}}
	for _, kv := range set {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return p, usagef("apps env: %q: want KEY=VALUE (or --unset KEY)", kv)
		}
		if _, dup := p.Set[k]; dup {
			return p, usagef("apps env: %s is set twice", k)
		}
		p.Set[k] = v
	}
	for _, k := range unset {
		if k == "" || strings.Contains(k, "=") {
			return p, usagef("apps env: --unset %q: want a KEY", k)
		}
		if _, both := p.Set[k]; both {
			return p, usagef("apps env: %s is both set and unset", k)
		}
		if !slices.Contains(p.Unset, k) {
			p.Unset = append(p.Unset, k)
		}
	}
	return p, nil
}

func showEnv(c *cobra.Command, g *globals, t enjin.TenantID, a string, reveal bool, o format) error {
	cl, err := g.client()
	if err != nil {
		return err
	}
	path := appapi.OpEnv.Path(string(t), a)
	if reveal {
		path += "?reveal=1"
	}
	var raw json.RawMessage
	if err := cl.get(c.Context(), path, &raw); err != nil {
		return err
	}
	if o.json() {
		return writeRaw(c.OutOrStdout(), raw)
	}
	var r appapi.Env
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if r.Masked && len(r.Env) > 0 {
		fmt.Fprintln(c.ErrOrStderr(), "(values masked; --reveal shows them)")
	}
	return printEnv(c.OutOrStdout(), r.Env)
}

// printEnv prints KEY=VALUE lines, sorted by key.
func printEnv(w io.Writer, env map[string]string) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, err := fmt.Fprintf(w, "%s=%s\n", k, env[k]); err != nil {
			return err
		}
	}
	return nil
}

func changeEnv(c *cobra.Command, g *globals, t enjin.TenantID, a string, p appapi.EnvPatch, o format) error {
	cl, err := g.client()
	if err != nil {
		return err
	}
	var rel appapi.Release
	if err := cl.do(c.Context(), "PATCH", appapi.OpPatchEnv.Path(string(t), a), nil, p, &rel); err != nil {
		return err
	}
	if o.json() {
		return writeJSON(c.OutOrStdout(), rel)
	}
	_, err = fmt.Fprintf(c.OutOrStdout(), "env changed: release %d\n", rel.Number)
	return err
}
