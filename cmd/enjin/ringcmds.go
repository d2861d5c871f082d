package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"enjin/keys"
	"enjin/rings"
	"enjin/rings/ring0"
	"enjin/rings/ring1"
)

func logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// ring0Flags are the flags ring0 and up share.
type ring0Flags struct {
	stateDir, dbURL, natsHost, apiAddr, logLevel, htpasswd string
	natsPort                                               int
	heartbeat, credsTTL                                    time.Duration
	routerAddr, appsDomain, dnsAddr, bridge, prefix        string
	apps                                                   bool // whether the ring 1 nodes host apps
}

func (f *ring0Flags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.stateDir, "state-dir", DefaultStateDir, "directory for keys and state")
	fs.StringVar(&f.dbURL, "database-url", os.Getenv("ENJIN_DATABASE_URL"), "PostgreSQL URL (default $ENJIN_DATABASE_URL)")
	fs.StringVar(&f.natsHost, "nats-host", "127.0.0.1", "NATS listen address")
	fs.IntVar(&f.natsPort, "nats-port", 4222, "NATS client port (-1 picks a free one)")
	fs.StringVar(&f.apiAddr, "api-addr", "127.0.0.1:7070", "meta API listen address (port 0 picks a free one)")
	fs.StringVar(&f.htpasswd, "htpasswd", "", "htpasswd file (bcrypt) of read-only API users")
	fs.DurationVar(&f.heartbeat, "heartbeat", 5*time.Second, "ring 1 heartbeat interval; liveness counts in these")
	fs.DurationVar(&f.credsTTL, "creds-ttl", keys.DefaultTTL, "lifetime of ring 1 credentials (nodes renew at two thirds)")
	fs.StringVar(&f.routerAddr, "router", "127.0.0.1:7080", "the app router's listen address")
	fs.StringVar(&f.appsDomain, "apps-domain", "apps.enjin.test", "app hosts are <app>.<tenant>.<apps-domain>")
	fs.StringVar(&f.dnsAddr, "dns", "127.0.0.1:5353", "DNS for app names (UDP and TCP)")
	fs.StringVar(&f.bridge, "bridge", "enjin0", "bridge the app instances join")
	fs.StringVar(&f.prefix, "prefix", "100.88.0.0/16", "addresses of app instances")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
}

func (f *ring0Flags) config(log *slog.Logger, dbURL string, nodes []ring0.Ring1Spec) (ring0.Config, error) {
	exe, err := os.Executable()
	if err != nil {
		return ring0.Config{}, err
	}
	cfg := ring0.Config{StateDir: f.stateDir, DatabaseURL: dbURL, NATSHost: f.natsHost, NATSPort: f.natsPort,
		APIAddr: f.apiAddr, Heartbeat: f.heartbeat, Ring1: nodes, Executable: exe, Htpasswd: f.htpasswd, Logger: log,
		CredsTTL: f.credsTTL}
	if f.apps {
		p, err := netip.ParsePrefix(f.prefix)
		if err != nil {
			return ring0.Config{}, usageError{"--prefix: " + err.Error()}
		}
		cfg.Apps = &ring0.AppsOptions{RouterAddr: f.routerAddr, AppsDomain: f.appsDomain, DNSAddr: f.dnsAddr, Bridge: f.bridge, Prefix: p}
	}
	return cfg, nil
}

func cmdRing0(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ring0", flag.ContinueOnError)
	var f ring0Flags
	f.register(fs)
	var nodes multiFlag
	fs.Var(&nodes, "ring1", "id of a ring 1 node to run here as a child process (repeatable)")
	fs.BoolVar(&f.apps, "apps", false, "the ring 1 nodes run here host tenants' apps (router, DNS, instances)")
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		return err
	}
	if f.dbURL == "" {
		return usageError{"ring0: --database-url or $ENJIN_DATABASE_URL is required (enjin up manages one for you)"}
	}
	log, err := logger(f.logLevel)
	if err != nil {
		return err
	}
	var specs []ring0.Ring1Spec
	for _, n := range nodes {
		if err := rings.NodeID(n).Validate(); err != nil {
			return usageError{"ring0: --ring1: " + err.Error()}
		}
		specs = append(specs, ring0.Ring1Spec{ID: rings.NodeID(n)})
	}
	cfg, err := f.config(log, f.dbURL, specs)
	if err != nil {
		return err
	}
	r, err := ring0.New(ctx, cfg)
	if err != nil {
		return err
	}
	if addr := os.Getenv("ENJIN_PPROF"); addr != "" {
		startPprof(addr, log)
	}
	fmt.Fprintf(stdout, "ring 0: api %s nats %s\n", r.APIURL(), r.NATSURL())
	return r.Run(ctx)
}

func cmdRing1(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ring1", flag.ContinueOnError)
	node := fs.String("node", "", "node id")
	natsURL := fs.String("nats", "", "NATS URL of ring 0")
	credsPath := fs.String("creds", "", "the node's .creds file")
	attestPath := fs.String("attest", "", "the node's attestation key file")
	keyDir := fs.String("dir", "", "where the node keeps keys it makes (scoped keys of hosted tenants)")
	appsDir := fs.String("apps-dir", "", "host tenants' apps, keeping packages and releases here")
	appsAPI := fs.String("apps-api", "127.0.0.1:7071", "the app API's listen address (with --apps-dir)")
	appsToken := fs.String("apps-token-file", "", "file with the app API's bearer token (with --apps-dir)")
	routerAddr := fs.String("router", "127.0.0.1:7080", "the app router's listen address (with --apps-dir)")
	appsDomain := fs.String("apps-domain", "apps.enjin.test", "app hosts are <app>.<tenant>.<apps-domain>")
	dnsAddr := fs.String("dns", "127.0.0.1:5353", "DNS for app names (with --apps-dir)")
	bridge := fs.String("bridge", "enjin0", "bridge the app instances join (with --apps-dir)")
	prefix := fs.String("prefix", "100.88.0.0/16", "addresses of app instances (with --apps-dir)")
	heartbeat := fs.Duration("heartbeat", ring1.DefaultHeartbeat, "heartbeat interval")
	join := fs.String("join", "", "one-time join token (external strategy); needs --ring0")
	ring0URL := fs.String("ring0", "", "ring 0 meta API URL, with --join")
	stateDir := fs.String("state-dir", DefaultStateDir, "where a joining node keeps its keys")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		return err
	}
	log, err := logger(*logLevel)
	if err != nil {
		return err
	}
	var cfg ring1.Config
	joined := filepath.Join(*stateDir, "ring1")
	switch {
	case *join != "" && *ring0URL == "":
		return usageError{"ring1: --join needs --ring0 URL"}
	case *join != "" && !fileExists(filepath.Join(joined, "node.json")):
		if cfg, err = ring1.Join(ctx, *ring0URL, *join, joined, nil); err != nil {
			return err
		}
		b, _ := json.Marshal(joinedNode{Node: cfg.Node, NATS: cfg.NATSURL})
		if err := keys.WriteCreds(filepath.Join(joined, "node.json"), b); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "joined as %s; keys in %s\n", cfg.Node, joined)
		cfg.CredsPath, cfg.Dir = filepath.Join(joined, ring1.CredsFile), joined
	case *join != "" || (*node == "" && fileExists(filepath.Join(joined, "node.json"))):
		// Joined before: start again with the keys and the newest credential kept there.
		if cfg, err = loadJoined(joined); err != nil {
			return err
		}
	case *node != "" && *natsURL != "" && *credsPath != "" && *attestPath != "":
		c, err := keys.LoadCreds(*credsPath)
		if err != nil {
			return err
		}
		a, err := keys.LoadAttestation(*attestPath)
		if err != nil {
			return err
		}
		cfg = ring1.Config{Node: rings.NodeID(*node), NATSURL: *natsURL, Creds: c, Attestation: a, CredsPath: *credsPath, Dir: *keyDir}
	default:
		return usageError{"ring1: give --node, --nats, --creds and --attest, or --join TOKEN --ring0 URL"}
	}
	cfg.Heartbeat, cfg.Logger = *heartbeat, log
	if *appsDir != "" {
		p, err := netip.ParsePrefix(*prefix)
		if err != nil {
			return usageError{"ring1: --prefix: " + err.Error()}
		}
		tok, err := os.ReadFile(*appsToken)
		if err != nil {
			return fmt.Errorf("ring1: --apps-token-file: %w", err)
		}
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		cfg.Apps = &ring1.AppsConfig{Dir: *appsDir, Helper: exe, Bridge: *bridge, Prefix: p, RouterAddr: *routerAddr,
			AppsDomain: *appsDomain, DNSAddr: *dnsAddr, APIAddr: *appsAPI, APIToken: strings.TrimSpace(string(tok))}
	}
	n, err := ring1.New(cfg)
	if err != nil {
		return err
	}
	return n.Run(ctx)
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

var errNotReady = errors.New("not ready")

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

// joinedNode is what a joined node remembers besides its keys.
type joinedNode struct {
	Node rings.NodeID `json:"node"`
	NATS string       `json:"nats"`
}

func loadJoined(dir string) (ring1.Config, error) {
	b, err := os.ReadFile(filepath.Join(dir, "node.json"))
	if err != nil {
		return ring1.Config{}, err
	}
	var j joinedNode
	if err := json.Unmarshal(b, &j); err != nil {
		return ring1.Config{}, fmt.Errorf("%s: %w", filepath.Join(dir, "node.json"), err)
	}
	c, err := keys.LoadCreds(filepath.Join(dir, ring1.CredsFile))
	if err != nil {
		return ring1.Config{}, err
	}
	a, err := keys.LoadAttestation(filepath.Join(dir, ring1.AttestFile))
	if err != nil {
		return ring1.Config{}, err
	}
	return ring1.Config{Node: j.Node, NATSURL: j.NATS, Creds: c, Attestation: a, CredsPath: filepath.Join(dir, ring1.CredsFile), Dir: dir}, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
