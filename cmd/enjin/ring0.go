package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"enjin"
	"enjin/bus/broker"
	"enjin/keys"
	"enjin/rings/ring0"
)

func logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// ring0Flags are the flags ring0 and up share.
type ring0Flags struct {
	dbURL, natsHost, apiAddr, logLevel, htpasswd    string
	natsPort, memoryMB                              int
	heartbeat, credsTTL                             time.Duration
	routerAddr, appsDomain, dnsAddr, bridge, prefix string
	routerTLS                                       string
	apps                                            bool // whether the ring 1 nodes host apps
	limits, uidRange                                string
	acmeDirectory, acmeEmail, acmeCA                string
}

func (f *ring0Flags) register(fs *pflag.FlagSet) {
	node := enjin.DefaultRing1Options() // what ring 0 hands its nodes, unless told otherwise
	fs.StringVar(&f.dbURL, "database-url", os.Getenv("ENJIN_DATABASE_URL"), "PostgreSQL URL (default $ENJIN_DATABASE_URL)")
	fs.StringVar(&f.natsHost, "nats-host", "127.0.0.1", "NATS listen address")
	fs.IntVar(&f.natsPort, "nats-port", 4222, "NATS client port (-1 picks a free one)")
	fs.StringVar(&f.apiAddr, "api-addr", "127.0.0.1:7070", "meta API listen address (port 0 picks a free one)")
	fs.StringVar(&f.htpasswd, "htpasswd", "", "htpasswd file (bcrypt) of read-only API users")
	fs.DurationVar(&f.heartbeat, "heartbeat", node.Heartbeat, "ring 1 heartbeat interval; liveness counts in these")
	fs.DurationVar(&f.credsTTL, "creds-ttl", keys.DefaultTTL, "lifetime of ring 1 credentials (nodes renew at two thirds)")
	fs.StringVar(&f.routerAddr, "router", node.Router, "the app router's listen address")
	fs.StringVar(&f.routerTLS, "router-tls", "127.0.0.1:7443", "where the app router serves custom domains over TLS (enjin domains); \"\" for none")
	fs.StringVar(&f.appsDomain, "apps-domain", node.AppsDomain, "app hosts are <app>.<tenant>.<apps-domain>")
	fs.StringVar(&f.dnsAddr, "dns", node.DNS, "DNS for app names (UDP and TCP)")
	fs.StringVar(&f.bridge, "bridge", node.Bridge, "bridge the app instances join")
	fs.StringVar(&f.prefix, "prefix", node.Prefix, "addresses of app instances")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.IntVar(&f.memoryMB, "memory-mb", ring0.DefaultMemoryMB, "ring 0's memory budget in MiB: observations beyond what it can hold are refused for now (nodes send them again)")
	fs.StringVar(&f.acmeDirectory, "acme-directory", "", "directory URL (https) of the ACME server that issues custom domains' certificates when a tenant asks (enjin domains add --acme); none by default")
	fs.StringVar(&f.acmeEmail, "acme-email", "", "with --acme-directory: the ACME account's contact address")
	fs.StringVar(&f.acmeCA, "acme-ca", "", "with --acme-directory: PEM file of CAs to trust for the ACME server's own TLS (a private server's), beside the system's")
	registerFlags(fs, enjin.LimitFlags(&f.limits, &f.uidRange))
}

// acme turns the ACME flags into ring 0's options (nil without --acme-directory).
func (f *ring0Flags) acme() (*ring0.ACMEOptions, error) {
	if f.acmeDirectory == "" {
		if f.acmeEmail != "" || f.acmeCA != "" {
			return nil, usagef("--acme-email and --acme-ca need --acme-directory")
		}
		return nil, nil
	}
	if u, err := url.Parse(f.acmeDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, usagef("--acme-directory %q: want an https:// URL", f.acmeDirectory)
	}
	if f.acmeEmail != "" && (!strings.Contains(f.acmeEmail, "@") || strings.ContainsAny(f.acmeEmail, " \t\r\n<>,")) {
		return nil, usagef("--acme-email %q: want an address like ops@example.com", f.acmeEmail)
	}
	o := &ring0.ACMEOptions{Directory: f.acmeDirectory, Email: f.acmeEmail}
	if f.acmeCA != "" {
		abs, err := filepath.Abs(f.acmeCA)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			return nil, usagef("--acme-ca: %v", err)
		}
		o.CAFile = abs
	}
	return o, nil
}

func (f *ring0Flags) config(stateDir string, log *slog.Logger, dbURL string, nodes []ring0.Ring1Spec) (ring0.Config, error) {
	exe, err := os.Executable()
	if err != nil {
		return ring0.Config{}, err
	}
	if f.memoryMB < 128 {
		return ring0.Config{}, usagef("--memory-mb %d: want at least 128", f.memoryMB)
	}
	cfg := ring0.Config{Version: version(), MemoryMB: f.memoryMB, StateDir: stateDir, DatabaseURL: dbURL, NATSHost: f.natsHost, NATSPort: f.natsPort,
		APIAddr: f.apiAddr, Heartbeat: f.heartbeat, Ring1: nodes, Executable: exe, Htpasswd: f.htpasswd, Logger: log,
		CredsTTL: f.credsTTL}
	if cfg.ACME, err = f.acme(); err != nil {
		return ring0.Config{}, err
	}
	if f.apps {
		p, err := netip.ParsePrefix(f.prefix)
		if err != nil {
			return ring0.Config{}, usagef("--prefix: %v", err)
		}
		// Checked here, so a mistake stops ring 0 at once rather than every ring 1 node.
		if _, _, _, err := limitsOf(f.limits, f.uidRange); err != nil {
			return ring0.Config{}, err
		}
		limits := f.limits
		if limits != "" {
			if limits, err = filepath.Abs(limits); err != nil {
				return ring0.Config{}, err
			}
		}
		cfg.Apps = &ring0.AppsOptions{RouterAddr: f.routerAddr, RouterTLSAddr: f.routerTLS, AppsDomain: f.appsDomain, DNSAddr: f.dnsAddr, Bridge: f.bridge, Prefix: p,
			Limits: limits, UIDRange: f.uidRange}
	}
	return cfg, nil
}

// ring0Only are the flags of `enjin ring0` that `enjin up` has not.
type ring0Only struct {
	ring0Flags
	ring1                 []string // ids of ring 1 nodes to run as children
	member, clusterListen string
	leafListen            string
	routes                []string
}

// registerRing0Flags registers every flag of `enjin ring0`.
func registerRing0Flags(fs *pflag.FlagSet, f *ring0Only) {
	f.register(fs)
	fs.StringArrayVar(&f.ring1, "ring1", nil, "id of a ring 1 node to run here as a child process (repeatable)")
	fs.BoolVar(&f.apps, "apps", false, "the ring 1 nodes run here host tenants' apps (router, DNS, instances)")
	fs.StringVar(&f.member, "member", "", "this ring 0's name among several members sharing --database-url and a copy of keys/ (turns clustering on)")
	fs.StringVar(&f.clusterListen, "cluster-listen", "127.0.0.1:6222", "with --member: where the other members' NATS routes connect")
	fs.StringSliceVar(&f.routes, "routes", nil, "with --member: host:port of the other members' --cluster-listen (comma-separated or repeated)")
	fs.StringVar(&f.leafListen, "leaf-listen", "", "host:port where ring 1 nodes of remote sites connect as NATS leafnodes (enjin ring1 --leaf); none by default")
}

// cluster turns the cluster flags into the broker's configuration (nil without --member).
func (f *ring0Only) cluster() (*broker.Cluster, error) {
	if f.member == "" {
		if len(f.routes) > 0 {
			return nil, usagef("ring0: --routes needs --member")
		}
		return nil, nil
	}
	if err := enjin.NodeID(f.member).Validate(); err != nil {
		return nil, usagef("ring0: --member: %v", err)
	}
	host, port, err := net.SplitHostPort(f.clusterListen)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p < 0 || p > 65535 {
		return nil, usagef("ring0: --cluster-listen %q: want host:port", f.clusterListen)
	}
	for _, r := range f.routes {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return nil, usagef("ring0: --routes %q: want host:port", r)
		}
	}
	return &broker.Cluster{Member: f.member, Host: host, Port: p, Routes: f.routes}, nil
}

func ring0Cmd(g *globals) *cobra.Command {
	var f ring0Only
	c := &cobra.Command{
		Use:   "ring0",
		Short: "run ring 0: broker, inventory, meta API, liveness",
		Long: `Run ring 0 with the PostgreSQL at --database-url: the embedded NATS broker, the inventory, the
meta API and liveness, and the ring 1 nodes named by --ring1 as supervised child processes.
'enjin up' does this and manages a PostgreSQL for you.`,
		Example: "  enjin ring0 --database-url postgres:///enjin --ring1 ring1-a --apps",
		Args:    argsBetween(0, 0, "no arguments"),
	}
	registerRing0Flags(c.Flags(), &f)
	c.RunE = func(c *cobra.Command, _ []string) error {
		if f.dbURL == "" {
			return usagef("ring0: --database-url or $ENJIN_DATABASE_URL is required (enjin up manages one for you)")
		}
		log, err := logger(f.logLevel)
		if err != nil {
			return err
		}
		var specs []ring0.Ring1Spec
		for _, n := range f.ring1 {
			if err := enjin.NodeID(n).Validate(); err != nil {
				return usagef("ring0: --ring1: %v", err)
			}
			specs = append(specs, ring0.Ring1Spec{ID: enjin.NodeID(n)})
		}
		cfg, err := f.config(g.stateDir, log, f.dbURL, specs)
		if err != nil {
			return err
		}
		if cfg.Cluster, err = f.cluster(); err != nil {
			return err
		}
		if f.leafListen != "" {
			if _, _, err := net.SplitHostPort(f.leafListen); err != nil {
				return usagef("ring0: --leaf-listen %q: want host:port", f.leafListen)
			}
			cfg.LeafAddr = f.leafListen
		}
		r, err := ring0.New(c.Context(), cfg)
		if err != nil {
			return err
		}
		if addr := os.Getenv("ENJIN_PPROF"); addr != "" {
			startPprof(addr, log)
		}
		header, err := writeAdminHeader(g.stateDir, r.AdminTokenFile())
		if err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "ring 0: api %s nats %s\n", r.APIURL(), r.NATSURL())
		ctx, stop := context.WithCancel(c.Context())
		defer stop()
		go keepEndpoints(ctx, g.stateDir, r, header, log) // ends with ctx
		return r.Run(ctx)
	}
	return c
}

// keepEndpoints writes the member's endpoints.json — its own API and broker first, then every
// other member's that announced itself lately — at once and whenever the members change,
// until ctx ends. It stays when the member stops: the CLI fails over to the others it lists.
func keepEndpoints(ctx context.Context, stateDir string, r *ring0.Ring0, header string, log *slog.Logger) {
	abs, _ := filepath.Abs(r.AdminTokenFile())
	var last []byte
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		ep := Endpoints{API: r.APIURL(), NATS: r.NATSURL(), APIs: []string{r.APIURL()}, NATSURLs: []string{r.NATSURL()},
			AdminTokenFile: abs, AdminHeaderFile: header}
		if ms, err := r.Members(ctx); err == nil {
			for _, m := range ms {
				if m.API != ep.API {
					ep.APIs, ep.NATSURLs = append(ep.APIs, m.API), append(ep.NATSURLs, m.NATS)
				}
			}
		}
		if b, _ := json.Marshal(ep); !bytes.Equal(b, last) {
			if err := writeEndpoints(stateDir, ep); err != nil {
				log.Warn("endpoints.json not written", "err", err)
			} else {
				last = b
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// startPprof serves net/http/pprof on addr (set ENJIN_PPROF=127.0.0.1:6060 to profile).
func startPprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { // ends with the process
		if err := srv.ListenAndServe(); err != nil {
			log.Warn("pprof", "err", err)
		}
	}()
}
