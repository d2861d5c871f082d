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

	"enjin/bus/broker"
	"enjin/keys"
	"enjin/rings"
	"enjin/rings/ring1"
	"enjin/supervisors/fabric"
)

// ring1Flags are the flags of `enjin ring1`.
type ring1Flags struct {
	node, natsURL, creds, attest, keyDir            string
	appsDir, appsAPI, appsTokenFile                 string
	routerAddr, appsDomain, dnsAddr, bridge, prefix string
	heartbeat                                       time.Duration
	join, joinFile, ring0URL                        string
	logLevel                                        string
	limits, uidRange                                string
	underlay                                        string
	noVMs                                           bool
	natUplinks, leaf                                []string
	netns                                           string
	routerHold                                      time.Duration
	appsTLSCert, appsTLSKey                         string
}

// registerRing1Flags registers every flag of `enjin ring1`.
func registerRing1Flags(fs *pflag.FlagSet, f *ring1Flags) {
	fs.StringVar(&f.node, "node", "", "node id")
	fs.StringVar(&f.natsURL, "nats", "", "NATS URL of ring 0")
	fs.StringVar(&f.creds, "creds", "", "the node's .creds file")
	fs.StringVar(&f.attest, "attest", "", "the node's attestation key file")
	fs.StringVar(&f.keyDir, "dir", "", "where the node keeps keys it makes (scoped keys of hosted tenants)")
	fs.StringVar(&f.appsDir, "apps-dir", "", "host tenants' apps, keeping packages and releases here")
	fs.StringVar(&f.appsAPI, "apps-api", "127.0.0.1:7071", "the app API's listen address (with --apps-dir)")
	fs.StringVar(&f.appsTokenFile, "apps-token-file", "", "file with the app API's bearer token (with --apps-dir)")
	fs.StringVar(&f.routerAddr, "router", "127.0.0.1:7080", "the app router's listen address (with --apps-dir)")
	fs.DurationVar(&f.routerHold, "router-hold", 2*time.Second, "how long the router holds a request while no instance of its app can take it (restarting); 0: answer 503 at once")
	fs.StringVar(&f.appsDomain, "apps-domain", "apps.enjin.test", "app hosts are <app>.<tenant>.<apps-domain>")
	fs.StringVar(&f.dnsAddr, "dns", "127.0.0.1:5353", "DNS for app names (with --apps-dir)")
	fs.StringVar(&f.bridge, "bridge", "enjin0", "bridge the app instances join (with --apps-dir)")
	fs.StringVar(&f.prefix, "prefix", "100.88.0.0/16", "addresses of app instances (with --apps-dir)")
	fs.DurationVar(&f.heartbeat, "heartbeat", ring1.DefaultHeartbeat, "heartbeat interval")
	fs.StringVar(&f.join, "join", "", "join with a one-time token read from stdin: --join - (external strategy); needs --ring0")
	fs.StringVar(&f.joinFile, "join-file", "", "join with the one-time token in this file (external strategy); needs --ring0")
	fs.StringVar(&f.ring0URL, "ring0", "", "ring 0's meta API URL: where --join - or --join-file joins, and what the VMs this node runs as ring 1 hosts join through")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.underlay, "underlay", "", "IPv4 address tenant networks are carried from (VXLAN); default: the one ring 0's bus is reached from")
	fs.BoolVar(&f.noVMs, "no-vms", false, "host no VMs, even where libvirtd answers")
	fs.StringVar(&f.netns, "netns", "", "run in this network namespace (a host simulated on this machine, as enjin up --ring1 N runs them)")
	fs.StringSliceVar(&f.leaf, "leaf", nil, "reach the bus as a NATS leafnode of these ring 0 hubs (nats://host:port of their --leaf-listen, comma-separated or repeated; tried in order); a node that joined")
	fs.StringSliceVar(&f.natUplinks, "nat-uplink", nil, "interface tenant networks with NAT reach beyond by (repeatable); default: the default route's")
	fs.StringVar(&f.appsTLSCert, "apps-tls-cert", "", "the app API's certificate (PEM, from ring 0's CA), served when --apps-api is beyond loopback (a node that joined keeps the one it was given)")
	fs.StringVar(&f.appsTLSKey, "apps-tls-key", "", "the key of --apps-tls-cert (PEM, mode 0600)")
	registerLimitFlags(fs, &f.limits, &f.uidRange)
}

func ring1Cmd(g *globals) *cobra.Command {
	var f ring1Flags
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
	registerRing1Flags(c.Flags(), &f)
	c.RunE = func(c *cobra.Command, _ []string) error {
		if f.netns != "" {
			if err := fabric.Enter(f.netns); err != nil { // runs this again there, unless there
				return err
			}
		}
		log, err := logger(f.logLevel)
		if err != nil {
			return err
		}
		cfg, err := f.nodeConfig(c, g.stateDir)
		if err != nil {
			return err
		}
		cfg.Heartbeat, cfg.Logger, cfg.NoVMs, cfg.NATUplinks, cfg.Leaf = f.heartbeat, log, f.noVMs, f.natUplinks, f.leaf
		cfg.Ring0API = cmp.Or(f.ring0URL, cfg.Ring0API)
		if g.caFile != "" { // ring 0 names the CA of its own nodes; a joined node keeps its own
			if cfg.CA, err = os.ReadFile(g.caFile); err != nil {
				return fmt.Errorf("ring1: --ca: %w", err)
			}
		}
		if len(f.leaf) > 0 && cfg.CredsPath == "" {
			return usagef("ring1: --leaf is for a node that joined (--join-file, or joined before)")
		}
		if f.underlay != "" {
			if cfg.Underlay, err = netip.ParseAddr(f.underlay); err != nil || !cfg.Underlay.Is4() {
				return usagef("ring1: --underlay %q: want an IPv4 address", f.underlay)
			}
		}
		return runNode(c, cfg, &f)
	}
	return c
}

// runNode runs ring 1 node cfg until the command's context ends, hosting apps as f says.
func runNode(c *cobra.Command, cfg ring1.Config, f *ring1Flags) error {
	var err error
	if cfg.Apps, err = f.appsConfig(cfg.Dir); err != nil {
		return err
	}
	n, err := ring1.New(cfg)
	if err != nil {
		return err
	}
	return n.Run(c.Context())
}

// nodeConfig is who the node is: joining now, joined before, or launched by ring 0.
func (f *ring1Flags) nodeConfig(c *cobra.Command, stateDir string) (ring1.Config, error) {
	joining, err := f.joinMode()
	if err != nil {
		return ring1.Config{}, err
	}
	joined := filepath.Join(stateDir, "ring1")
	switch {
	case joining && !fileExists(filepath.Join(joined, "node.json")):
		tok, err := joinToken(f.join, f.joinFile, c.InOrStdin())
		if err != nil {
			return ring1.Config{}, err
		}
		return joinNow(c.Context(), c.OutOrStdout(), f.ring0URL, tok, joined)
	case joining || (f.node == "" && fileExists(filepath.Join(joined, "node.json"))):
		// Joined before: start again with the keys and the newest credential kept there.
		return loadJoined(joined)
	case f.node != "" && f.natsURL != "" && f.creds != "" && f.attest != "":
		cr, err := keys.LoadCreds(f.creds)
		if err != nil {
			return ring1.Config{}, err
		}
		a, err := keys.LoadAttestation(f.attest)
		if err != nil {
			return ring1.Config{}, err
		}
		return ring1.Config{Node: rings.NodeID(f.node), NATSURL: f.natsURL, Creds: cr, Attestation: a, CredsPath: f.creds, Dir: f.keyDir}, nil
	default:
		return ring1.Config{}, usagef("ring1: give --node, --nats, --creds and --attest, or --join-file FILE (or --join -) and --ring0 URL")
	}
}

// appsConfig is the app hosting part of the node's configuration, nil without --apps-dir. A
// node that joined takes the bearer ring 0 gave it, kept in its directory dir, unless
// --apps-token-file names another.
func (f *ring1Flags) appsConfig(dir string) (*ring1.AppsConfig, error) {
	if f.appsDir == "" {
		return nil, nil
	}
	p, err := netip.ParsePrefix(f.prefix)
	if err != nil {
		return nil, usagef("ring1: --prefix: %v", err)
	}
	tokFile := f.appsTokenFile
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
	pol, first, count, err := limitsOf(f.limits, f.uidRange)
	if err != nil {
		return nil, err
	}
	apiTLS, err := f.appsTLS(dir)
	if err != nil {
		return nil, err
	}
	return &ring1.AppsConfig{Dir: f.appsDir, Helper: exe, Bridge: f.bridge, Prefix: p, RouterAddr: f.routerAddr, RouterHold: cmp.Or(f.routerHold, -1),
		AppsDomain: f.appsDomain, DNSAddr: f.dnsAddr, APIAddr: f.appsAPI, APIToken: tok, Policy: pol,
		UIDFirst: first, UIDCount: count, APITLS: apiTLS}, nil
}

// appsTLS is the app API's TLS: --apps-tls-cert and --apps-tls-key, or, for a node that
// joined (dir) and serves the API beyond loopback, the certificate ring 0 gave it; nil on
// loopback without them.
func (f *ring1Flags) appsTLS(dir string) (*tls.Config, error) {
	cert, key := f.appsTLSCert, f.appsTLSKey
	if (cert == "") != (key == "") {
		return nil, usagef("ring1: give --apps-tls-cert and --apps-tls-key together")
	}
	if cert == "" {
		host, _, err := net.SplitHostPort(f.appsAPI)
		if err != nil {
			return nil, usagef("ring1: --apps-api %q: want host:port", f.appsAPI)
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
