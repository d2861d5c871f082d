package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

func cmdTenants(ctx context.Context, args []string, stdout io.Writer) error {
	verb := "ls"
	if len(args) > 0 && (args[0] == "ls" || args[0] == "create" || args[0] == "delete" || args[0] == "show" || args[0] == "token") {
		verb, args = args[0], args[1:]
	}
	var name string
	if verb != "ls" && len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("tenants "+verb, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	out := outputFlag(fs)
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		if help {
			fmt.Fprintln(stdout, "\nverbs: ls, create NAME, show NAME, delete NAME, token NAME (a bearer token for the tenant's own apps)")
		}
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	if verb != "ls" && name == "" {
		return usageError{"tenants " + verb + ": give a tenant name"}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	path := "/v1/tenants/" + url.PathEscape(name)
	var res any
	switch verb {
	case "ls":
		var r struct {
			Tenants []struct {
				ID    string `json:"id"`
				Hosts []struct {
					Node string `json:"node"`
				} `json:"hosts"`
			} `json:"tenants"`
		}
		if _, err := c.do(ctx, "GET", "/v1/tenants", nil, nil, &r); err != nil {
			return err
		}
		if *out == "json" {
			return writeJSON(stdout, r)
		}
		fmt.Fprintf(stdout, "%-24s %s\n", "TENANT", "HOSTS")
		for _, t := range r.Tenants {
			hosts := ""
			for i, h := range t.Hosts {
				if i > 0 {
					hosts += ","
				}
				hosts += h.Node
			}
			fmt.Fprintf(stdout, "%-24s %s\n", t.ID, hosts)
		}
		return nil
	case "create":
		if _, err := c.do(ctx, "POST", "/v1/tenants", nil, map[string]string{"name": name}, &res); err != nil {
			return err
		}
		if *out == "table" {
			fmt.Fprintf(stdout, "created tenant %s\n", name)
			return nil
		}
	case "show":
		if _, err := c.do(ctx, "GET", path, nil, nil, &res); err != nil {
			return err
		}
	case "token":
		var tok struct {
			Token string `json:"token"`
		}
		if _, err := c.do(ctx, "POST", path+"/tokens", nil, map[string]string{"name": "cli"}, &tok); err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok.Token)
		return nil
	case "delete":
		var cur struct {
			Version int64 `json:"version"`
		}
		if _, err := c.do(ctx, "GET", path, nil, nil, &cur); err != nil {
			return err
		}
		h := http.Header{"If-Match": {strconv.Quote(strconv.FormatInt(cur.Version, 10))}}
		if _, err := c.do(ctx, "DELETE", path, h, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted tenant %s: its credentials are revoked and its account disabled\n", name)
		return nil
	}
	return writeJSON(stdout, res)
}
