package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"enjin"
	"enjin/services/inventory"
)

func domainsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "domains",
		Short: "custom domains of a tenant's apps, served over TLS by the routers (add, ls, rm)",
		Long: `Custom domains of a tenant's apps. An app with a domain answers to it through every ring 1
router: over TLS on the routers' TLS port, with the certificate given (chosen by the name the
client asks for), and in plain HTTP — or, with --redirect, plain HTTP is sent to https. The
private key is sealed by ring 0 and never shown again; ls shows the certificate's fingerprint
and expiry. With --acme instead of --cert and --key, ring 0 gets the certificate from the
cloud's ACME server (its operator names one with --acme-directory), proving the domain over
HTTP-01 through the routers, and renews it; ls shows how that went (STATE, with the last
error). A domain is one app's: another app asking for it is refused (409), as is a
domain under the cloud's apps domain.`,
		Example: `  enjin domains add acme/web www.example.com --cert fullchain.pem --key privkey.pem --redirect
  enjin domains add acme/web shop.example.com --acme
  enjin domains ls acme
  enjin domains ls acme/web -o json
  enjin domains rm acme/web www.example.com`,
	}
	c.AddCommand(domainsAddCmd(g), domainsLsCmd(g), domainsRmCmd(g))
	return c
}

func domainPath(t enjin.TenantID, app, domain string) string {
	return appPath(t, app) + "/domains/" + url.PathEscape(domain)
}

func printDomains(w io.Writer, ds ...inventory.AppDomain) error {
	tw := newTable(w, "DOMAIN\tAPP\tREDIRECT\tNOT AFTER\tFINGERPRINT (SHA-256)\tSTATE")
	for _, d := range ds {
		notAfter, fp, state := "-", d.Fingerprint, "uploaded"
		if !d.NotAfter.IsZero() {
			notAfter = d.NotAfter.UTC().Format(time.RFC3339)
		}
		if fp == "" {
			fp = "-"
		}
		if d.ACME {
			state = "acme " + d.State
			if d.LastError != "" {
				state += ": " + shortLine(d.LastError, 200)
			}
		}
		fmt.Fprintf(tw, "%s\t%s/%s\t%t\t%s\t%s\t%s\n", d.Domain, d.Tenant, d.App, d.Redirect, notAfter, fp, state)
	}
	return tw.Flush()
}

// shortLine is s on one line, cut at n characters.
func shortLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}

func domainsAddCmd(g *globals) *cobra.Command {
	var certFile, keyFile string
	var redirect, acme bool
	c := &cobra.Command{Use: "add TENANT/APP DOMAIN (--cert FILE --key FILE | --acme)", Short: "give an app a custom domain, or a new certificate for one it has",
		Args: argsBetween(2, 2, "TENANT/APP DOMAIN")}
	out := outputFlag(c)
	f := c.Flags()
	f.StringVar(&certFile, "cert", "", "PEM file of the domain's certificate, then its chain")
	f.StringVar(&keyFile, "key", "", "PEM file of the certificate's private key")
	f.BoolVar(&redirect, "redirect", false, "answer plain HTTP requests for the domain with 308 to https")
	f.BoolVar(&acme, "acme", false, "have ring 0 get the certificate from the cloud's ACME server, and renew it (instead of --cert and --key)")
	c.RunE = func(c *cobra.Command, args []string) error {
		t, app, err := appRef(args[0])
		if err != nil {
			return err
		}
		body := map[string]any{"redirect": redirect}
		switch {
		case acme && (certFile != "" || keyFile != ""):
			return usagef("domains add: --acme, or --cert and --key: not both")
		case acme:
			body["acme"] = true
		case certFile == "" || keyFile == "":
			return usagef("domains add: --cert and --key are required (or --acme)")
		default:
			if body["cert"], err = readPEMFile("--cert", certFile); err != nil {
				return err
			}
			if body["key"], err = readPEMFile("--key", keyFile); err != nil {
				return err
			}
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var d inventory.AppDomain
		if err := cl.do(c.Context(), "PUT", domainPath(t, app, args[1]), nil, body, &d); err != nil {
			return err
		}
		if out.json() {
			return writeJSON(c.OutOrStdout(), d)
		}
		return printDomains(c.OutOrStdout(), d)
	}
	return c
}

// maxPEMFile bounds what --cert and --key read; the API refuses less.
const maxPEMFile = 1 << 20

func readPEMFile(flag, path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", usagef("domains add: %s: %v", flag, err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxPEMFile+1))
	switch {
	case err != nil:
		return "", usagef("domains add: %s: %v", flag, err)
	case len(b) > maxPEMFile:
		return "", usagef("domains add: %s %s: larger than %d bytes", flag, path, maxPEMFile)
	}
	return string(b), nil
}

func domainsLsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "ls TENANT[/APP]", Short: "the custom domains of a tenant's apps, or of one app", Args: argsBetween(1, 1, "TENANT or TENANT/APP")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		path := ""
		if strings.Contains(args[0], "/") {
			t, app, err := appRef(args[0])
			if err != nil {
				return err
			}
			path = appPath(t, app) + "/domains"
		} else if enjin.TenantID(args[0]).Validate() == nil {
			path = "/v1/tenants/" + url.PathEscape(args[0]) + "/domains"
		} else {
			return usagef("domains ls: %q: want TENANT or TENANT/APP (slugs)", args[0])
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		l, written, err := getList[struct{ Domains []inventory.AppDomain }](c, cl, out, path)
		if err != nil || written {
			return err
		}
		return printDomains(c.OutOrStdout(), l.Domains...)
	}
	return c
}

func domainsRmCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "rm TENANT/APP DOMAIN", Short: "take a custom domain from an app", Args: argsBetween(2, 2, "TENANT/APP DOMAIN")}
	c.RunE = func(c *cobra.Command, args []string) error {
		t, app, err := appRef(args[0])
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		if err := cl.do(c.Context(), "DELETE", domainPath(t, app, args[1]), nil, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "removed %s from %s/%s\n", args[1], t, app)
		return nil
	}
	return c
}
