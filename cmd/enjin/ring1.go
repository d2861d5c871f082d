package main

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"enjin"
	"enjin/bus/broker"
	"enjin/keys"
	"enjin/rings/ring1"
	"enjin/supervisors/fabric"
)

// registerFlags registers flags on fs, each bound to its field, the field's value its
// default. The root's flags (every command's) are left to the root.
func registerFlags(fs *pflag.FlagSet, flags []enjin.Flag) {
	for _, f := range flags {
		if f.Root {
			continue
		}
		switch p := f.Value.(type) {
		case *string:
			fs.StringVar(p, f.Name, *p, f.Usage)
		case *bool:
			fs.BoolVar(p, f.Name, *p, f.Usage)
		case *time.Duration:
			fs.DurationVar(p, f.Name, *p, f.Usage)
		case *[]string:
			fs.StringSliceVar(p, f.Name, *p, f.Usage)
		default:
			panic(fmt.Sprintf("flag --%s of type %T", f.Name, f.Value))
		}
	}
}

func ring1Cmd(g *globals) *cobra.Command {
	f := enjin.DefaultRing1Options()
	c := &cobra.Command{
		Use:   "ring1",
		Short: "run a ring 1 node (launched by ring 0, or joining with a one-time token)",
		Long: `Run a ring 1 node. Ring 0 launches its own with --node, --nats, --creds and --attest. A node
on another machine joins once with a one-time token (the external strategy) and keeps its keys
in <state-dir>/ring1; run again, it starts with them.

The token is never an argument: others can read a process's arguments. Give it in a file
(--join-file) or on stdin (--join -).`,
		Example: `  enjin ring1 --join-file join.token --ring0 http://ring0.example:7070
  enjin ring1 --join - --ring0 http://ring0.example:7070 < join.token
  enjin ring1        # a node that joined before`,
		Args: argsBetween(0, 0, "no arguments"),
	}
	registerFlags(c.Flags(), f.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
		f.CA = g.caFile
		if f.Netns != "" {
			if err := fabric.Enter(f.Netns); err != nil { // runs this again there, unless there
				return err
			}
		}
		log, err := logger(f.LogLevel)
		if err != nil {
			return err
		}
		cfg, err := nodeConfig(c, f, g.stateDir)
		if err != nil {
			return err
		}
		cfg.Heartbeat, cfg.Logger, cfg.NoVMs, cfg.NATUplinks, cfg.Leaf = f.Heartbeat, log, f.NoVMs, f.NATUplinks, f.Leaf
		cfg.Ring0API = cmp.Or(f.Ring0, cfg.Ring0API)
		if f.CA != "" { // ring 0 names the CA of its own nodes; a joined node keeps its own
			if cfg.CA, err = os.ReadFile(f.CA); err != nil {
				return fmt.Errorf("ring1: --ca: %w", err)
			}
		}
		if len(f.Leaf) > 0 && cfg.CredsPath == "" {
			return usagef("ring1: --leaf is for a node that joined (--join-file, or joined before)")
		}
		if f.Underlay != "" {
			if cfg.Underlay, err = netip.ParseAddr(f.Underlay); err != nil || !cfg.Underlay.Is4() {
				return usagef("ring1: --underlay %q: want an IPv4 address", f.Underlay)
			}
		}
		return runNode(c, cfg, f)
	}
	return c
}

// runNode runs ring 1 node cfg until the command's context ends, hosting apps as o says.
func runNode(c *cobra.Command, cfg ring1.Config, o enjin.Ring1Options) error {
	var err error
	if cfg.Apps, err = appsConfig(o, cfg.Dir); err != nil {
		return err
	}
	n, err := ring1.New(cfg)
	if err != nil {
		return err
	}
	return n.Run(c.Context())
}

// nodeConfig is who the node is: joining now, joined before, or launched by ring 0.
func nodeConfig(c *cobra.Command, o enjin.Ring1Options, stateDir string) (ring1.Config, error) {
	joining, err := joinMode(o)
	if err != nil {
		return ring1.Config{}, err
	}
	joined := filepath.Join(stateDir, "ring1")
	switch {
	case joining && !fileExists(filepath.Join(joined, "node.json")):
		tok, err := joinToken(o.Join, o.JoinFile, c.InOrStdin())
		if err != nil {
			return ring1.Config{}, err
		}
		return joinNow(c.Context(), c.OutOrStdout(), o.Ring0, tok, joined)
	case joining || (o.Node == "" && fileExists(filepath.Join(joined, "node.json"))):
		// Joined before: start again with the keys and the newest credential kept there.
		return loadJoined(joined)
	case o.Node != "" && o.NATS != "" && o.Creds != "" && o.Attest != "":
		cr, err := keys.LoadCreds(o.Creds)
		if err != nil {
			return ring1.Config{}, err
		}
		a, err := keys.LoadAttestation(o.Attest)
		if err != nil {
			return ring1.Config{}, err
		}
		return ring1.Config{Node: enjin.NodeID(o.Node), NATSURL: o.NATS, Creds: cr, Attestation: a, CredsPath: o.Creds, Dir: o.Dir}, nil
	default:
		return ring1.Config{}, usagef("ring1: give --node, --nats, --creds and --attest, or --join-file FILE (or --join -) and --ring0 URL")
	}
}

// appsConfig is the app hosting part of the node's configuration, nil without --apps-dir. A
// node that joined takes the bearer ring 0 gave it, kept in its directory dir, unless
// --apps-token-file names another.
func appsConfig(o enjin.Ring1Options, dir string) (*ring1.AppsConfig, error) {
	if o.AppsDir == "" {
		return nil, nil
	}
	p, err := netip.ParsePrefix(o.Prefix)
	if err != nil {
		return nil, usagef("ring1: --prefix: %v", err)
	}
	tokFile := o.AppsTokenFile
	if tokFile == "" {
		if dir == "" || !fileExists(filepath.Join(dir, ring1.AppsTokenFile)) {
			return nil, usagef("ring1: --apps-dir needs --apps-token-file, or a node that joined (ring 0 gave it a bearer)")
		}
		tokFile = filepath.Join(dir, ring1.AppsTokenFile)
	}
	tok, err := readToken(tokFile)
	if err != nil {
		return nil, fmt.Errorf("ring1: --apps-token-file: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	pol, first, count, err := limitsOf(o.Limits, o.UIDRange)
	if err != nil {
		return nil, err
	}
	apiTLS, err := appsTLS(o, dir)
	if err != nil {
		return nil, err
	}
	return &ring1.AppsConfig{Dir: o.AppsDir, Helper: exe, Bridge: o.Bridge, Prefix: p, RouterAddr: o.Router, RouterTLSAddr: o.RouterTLS, RouterHold: cmp.Or(o.RouterHold, -1),
		AppsDomain: o.AppsDomain, DNSAddr: o.DNS, APIAddr: o.AppsAPI, APIToken: tok, Policy: pol,
		UIDFirst: first, UIDCount: count, APITLS: apiTLS}, nil
}

// appsTLS is the app API's TLS: --apps-tls-cert and --apps-tls-key, or, for a node that
// joined (dir) and serves the API beyond loopback, the certificate ring 0 gave it; nil on
// loopback without them.
func appsTLS(o enjin.Ring1Options, dir string) (*tls.Config, error) {
	cert, key := o.AppsTLSCert, o.AppsTLSKey
	if (cert == "") != (key == "") {
		return nil, usagef("ring1: give --apps-tls-cert and --apps-tls-key together")
	}
	if cert == "" {
		host, _, err := net.SplitHostPort(o.AppsAPI)
		if err != nil {
			return nil, usagef("ring1: --apps-api %q: want host:port", o.AppsAPI)
		}
		if broker.Loopback(host) || dir == "" || !fileExists(filepath.Join(dir, ring1.AppsCertFile)) {
			return nil, nil
		}
		cert, key = filepath.Join(dir, ring1.AppsCertFile), filepath.Join(dir, ring1.AppsKeyFile)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("ring1: the app API's certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
