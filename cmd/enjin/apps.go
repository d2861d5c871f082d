package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"enjin/rings"
	"enjin/services/apphost"
)

const appsUsage = `verbs:
  deploy DIR --tenant T --name N   pack DIR (a Procfile, optional enjin.json) and deploy it
  ls --tenant T                    the tenant's apps
  ps T/N [-o json]                 instances: node, address, port, state, restarts
  scale T/N TYPE=COUNT             run COUNT instances of a process type
  env T/N [KEY=VALUE …]            replace the environment (a new release)
  releases T/N                     the releases
  rollback T/N RELEASE             make an earlier release live again
  destroy T/N                      stop everything and delete the app`

// appRef parses "tenant/app".
func appRef(s string) (rings.TenantID, string, error) {
	t, a, ok := strings.Cut(s, "/")
	if !ok || rings.TenantID(t).Validate() != nil || !rings.IsSlug(a) {
		return "", "", usageError{fmt.Sprintf("%q: want TENANT/APP (slugs)", s)}
	}
	return rings.TenantID(t), a, nil
}

func cmdApps(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, "usage: enjin apps VERB …\n\n"+appsUsage)
		return nil
	}
	verb, args := args[0], args[1:]
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = append(pos, args[0]), args[1:]
	}
	fs := flag.NewFlagSet("apps "+verb, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	out := outputFlag(fs)
	tenant := fs.String("tenant", "", "tenant (deploy, ls)")
	name := fs.String("name", "", "app name (deploy)")
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		if help {
			fmt.Fprintln(stdout, "\n"+appsUsage)
		}
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	need := map[string]int{"deploy": 1, "ls": 0, "ps": 1, "scale": 2, "env": 1, "releases": 1, "rollback": 2, "destroy": 1}
	min, ok := need[verb]
	if !ok {
		return usageError{fmt.Sprintf("apps: unknown verb %q (try enjin apps --help)", verb)}
	}
	if len(pos) < min || (verb != "env" && len(pos) > min) {
		return usageError{fmt.Sprintf("apps %s: wrong arguments (try enjin apps --help)", verb)}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	switch verb {
	case "deploy":
		return deployApp(ctx, c, cf, stdout, pos[0], *tenant, *name)
	case "ls":
		if rings.TenantID(*tenant).Validate() != nil {
			return usageError{"apps ls: --tenant is required"}
		}
		return show(ctx, c, stdout, "/v1/tenants/"+*tenant+"/apps", *out)
	}
	t, a, err := appRef(pos[0])
	if err != nil {
		return err
	}
	base := "/v1/tenants/" + string(t) + "/apps/" + url.PathEscape(a)
	switch verb {
	case "ps":
		if *out == "json" {
			return show(ctx, c, stdout, base+"/instances", "json")
		}
		var r struct{ Instances []apphost.InstanceInfo }
		if _, err := c.do(ctx, "GET", base+"/instances", nil, nil, &r); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-40s %-6s %-4s %-16s %-10s %s\n", "INSTANCE", "TYPE", "REL", "ADDRESS", "STATE", "RESTARTS")
		for _, i := range r.Instances {
			fmt.Fprintf(stdout, "%-40s %-6s %-4d %-16s %-10s %d\n", i.ID, i.Type, i.Release, fmt.Sprintf("%s:%d", i.Address, i.Port), i.State, i.Restarts)
		}
		return nil
	case "scale":
		typ, n, ok := strings.Cut(pos[1], "=")
		count, err := strconv.Atoi(n)
		if !ok || err != nil {
			return usageError{"apps scale: want TYPE=COUNT, such as web=3"}
		}
		return send(ctx, c, stdout, "PUT", base+"/scale/"+url.PathEscape(typ), map[string]int{"instances": count})
	case "env":
		env := map[string]string{}
		for _, kv := range pos[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return usageError{"apps env: want KEY=VALUE"}
			}
			env[k] = v
		}
		return send(ctx, c, stdout, "PUT", base+"/env", map[string]any{"env": env})
	case "releases":
		return show(ctx, c, stdout, base+"/releases", "json")
	case "rollback":
		n, err := strconv.Atoi(pos[1])
		if err != nil {
			return usageError{"apps rollback: want a release number"}
		}
		return send(ctx, c, stdout, "POST", base+"/rollback", map[string]int{"release": n})
	case "destroy":
		if _, err := c.do(ctx, "DELETE", base, nil, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "destroyed %s/%s\n", t, a)
	}
	return nil
}

func show(ctx context.Context, c *client, stdout io.Writer, path, _ string) error {
	var raw json.RawMessage
	if _, err := c.do(ctx, "GET", path, nil, nil, &raw); err != nil {
		return err
	}
	var v any
	json.Unmarshal(raw, &v)
	return writeJSON(stdout, v)
}

func send(ctx context.Context, c *client, stdout io.Writer, method, path string, in any) error {
	var v any
	if _, err := c.do(ctx, method, path, nil, in, &v); err != nil {
		return err
	}
	return writeJSON(stdout, v)
}

// deployApp packs dir and uploads it as the app's next release, then prints where to reach it.
func deployApp(ctx context.Context, c *client, cf clientFlags, stdout io.Writer, dir, tenant, name string) error {
	if rings.TenantID(tenant).Validate() != nil || !rings.IsSlug(name) {
		return usageError{"apps deploy: --tenant and --name (slugs) are required"}
	}
	if _, err := os.Stat(filepath.Join(dir, "Procfile")); err != nil {
		return fmt.Errorf("apps deploy: %s has no Procfile", dir)
	}
	bundle, err := apphost.Pack(dir)
	if err != nil {
		return err
	}
	// No client timeout: a deploy waits up to a minute for the release to be healthy.
	resp, err := c.send(ctx, &http.Client{}, "POST", "/v1/tenants/"+tenant+"/apps/"+name+"/releases",
		http.Header{"Content-Type": {"application/gzip"}}, bytes.NewReader(bundle))
	if err != nil {
		return fmt.Errorf("deploy %s/%s: %w", tenant, name, err)
	}
	defer resp.Body.Close()
	var rel apphost.Release
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rel); err != nil || rel.Digest == "" {
		return fmt.Errorf("deploy %s/%s: unreadable answer: %v", tenant, name, err)
	}
	fmt.Fprintf(stdout, "deployed %s/%s release %d (%s)\n", tenant, name, rel.Number, rel.Digest[:19])
	if ep, err := readEndpoints(cf.stateDir); err == nil && ep.Router != "" {
		fmt.Fprintf(stdout, "url: http://%s.%s.%s/  (router %s: curl -H 'Host: %s.%s.%s' http://%s/)\n",
			name, tenant, ep.AppsDomain, ep.Router, name, tenant, ep.AppsDomain, ep.Router)
	}
	return nil
}

func readEndpoints(stateDir string) (Endpoints, error) {
	var ep Endpoints
	b, err := os.ReadFile(filepath.Join(stateDir, "endpoints.json"))
	if err != nil {
		return ep, err
	}
	return ep, json.Unmarshal(b, &ep)
}

func cmdLogs(ctx context.Context, args []string, stdout io.Writer) error {
	var ref string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		ref, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	follow := fs.Bool("f", false, "follow: keep printing new lines")
	lines := fs.Int("lines", 100, "how many past lines")
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		return err
	}
	if ref == "" {
		return usageError{"logs: give TENANT/APP"}
	}
	t, a, err := appRef(ref)
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	q := url.Values{"lines": {strconv.Itoa(*lines)}}
	if *follow {
		q.Set("follow", "1")
	}
	// No client timeout: following a log is a stream.
	resp, err := c.send(ctx, &http.Client{}, "GET", "/v1/tenants/"+string(t)+"/apps/"+a+"/logs?"+q.Encode(), nil, nil)
	if err != nil {
		return fmt.Errorf("logs %s: %w", ref, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 128<<10), 128<<10)
	for sc.Scan() {
		var l apphost.LogLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			fmt.Fprintf(stdout, "%s %s[%s]: %s\n", l.Time.Format("15:04:05.000"), l.Instance, l.Stream, l.Line)
		}
	}
	if ctx.Err() != nil {
		return nil // interrupted while following
	}
	return sc.Err()
}
