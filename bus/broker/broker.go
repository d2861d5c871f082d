// Package broker runs enjin's embedded NATS server (nats-server as a library) in operator
// mode: the operator and account JWTs come from package keys, the directory resolver in the
// state dir persists them, and every account's exports and imports follow bus.Flows. It
// listens on loopback unless told otherwise.
//
// The broker is ring 0's: it holds the operator signing key, so it alone re-signs account
// JWTs, pushes them to the running server ($SYS.REQ.CLAIMS.UPDATE), revokes users (the
// server closes their live connections within milliseconds) and adds tenants.
//
// broker imports bus, keys and enjin (the vocabulary); ring 0, cmd/enjin and bench (its
// ingest benchmark) import broker; tests start it through test/harness with exactly this
// configuration.
package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
)

// DefaultPort is the client port when Config.Port is zero.
const DefaultPort = 4222

// Config configures a broker. The zero value (plus a StateDir) listens on 127.0.0.1:4222.
type Config struct {
	StateDir string       // holds keys/ and resolver/
	Host     string       // listen address; "" means 127.0.0.1
	Port     int          // 0 means DefaultPort; -1 picks a free port
	Logger   *slog.Logger // nil discards
	// Cluster, if set, joins this server to the other ring 0 members' with NATS routes.
	// Every member holds the same trust chain (a copy of keys/); routes authenticate with a
	// secret derived from its operator signing key, so only members can join.
	Cluster *Cluster
	// Share, if set, is where the members keep their accounts (the inventory): a member
	// takes in the others' accounts before it signs any and writes back what it changed.
	Share Share
	// Leaf, if set ("host:port"), listens for ring 1 nodes connecting as NATS leafnodes (a
	// remote site's node): each authenticates as its own RING1 user, whose permissions the
	// server enforces on everything the leaf sends in and is sent.
	Leaf string
}

// Cluster is this member's place among the ring 0 members.
type Cluster struct {
	Member string   // this member's name, unique among them (its server's name)
	Host   string   // the route listener's address; "" means 127.0.0.1
	Port   int      // the route listener's port; -1 picks a free one
	Routes []string // host:port of the other members' route listeners
}

// clusterName names the ring 0 members' NATS cluster.
const clusterName = "enjin-ring0"

// routeUser is the name routes authenticate as; the password is derived (Operator.Derive).
const routeUser = "ring0"

// clusterOpts sets opts up for c, with the route password derived from the chain.
func clusterOpts(opts *server.Options, c *Cluster, chain *keys.Chain) error {
	if err := enjin.NodeID(c.Member).Validate(); err != nil {
		return fmt.Errorf("broker: cluster member name: %w", err)
	}
	pass := chain.Operator.Derive("ring0-routes")
	opts.ServerName = clusterName + "-" + c.Member
	opts.Cluster = server.ClusterOpts{Name: clusterName, Host: c.Host, Port: c.Port,
		Username: routeUser, Password: pass, AuthTimeout: 2}
	if opts.Cluster.Host == "" {
		opts.Cluster.Host = "127.0.0.1"
	}
	for _, r := range c.Routes {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return fmt.Errorf("broker: route %q: want host:port", r)
		}
		opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", User: url.UserPassword(routeUser, pass), Host: r})
	}
	return nil
}

// Broker is a running embedded server with ring 0's system connection.
type Broker struct {
	log   *slog.Logger
	chain *keys.Chain
	srv   *server.Server
	sys   *nats.Conn
	share Share // nil: a lone ring 0

	mu         sync.Mutex // serializes re-signing and pushing account JWTs
	violations atomic.Uint64
	closeOnce  sync.Once
}

// New initializes the chain if needed, provisions every account and starts the server.
func New(cfg Config) (*Broker, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	chain, err := keys.Init(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	var jwts []Signed
	ctx, cancel := context.WithTimeout(context.Background(), shareWait)
	defer cancel()
	if err := shared(ctx, cfg.Share, chain, func() (err error) {
		jwts, err = Provision(chain, time.Now())
		return err
	}); err != nil {
		return nil, err
	}
	res, err := server.NewDirAccResolver(filepath.Join(cfg.StateDir, "resolver"), 0, time.Minute, server.RenameDeleted)
	if err != nil {
		return nil, fmt.Errorf("broker: resolver: %w", err)
	}
	for _, a := range jwts {
		if err := res.Store(a.Public, a.JWT); err != nil {
			return nil, fmt.Errorf("broker: resolver: store %s: %w", a.Public, err)
		}
	}
	sys, _ := chain.Account(keys.SYS)
	opts := &server.Options{
		ServerName:       "enjin-ring0",
		Host:             cfg.Host,
		Port:             cfg.Port,
		TrustedOperators: []*jwt.OperatorClaims{chain.Operator.Claims},
		SystemAccount:    sys.Public,
		AccountResolver:  res,
		NoSigs:           true,
		MaxPayload:       1 << 20,
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if cfg.Cluster != nil {
		if err := clusterOpts(opts, cfg.Cluster, chain); err != nil {
			return nil, err
		}
	}
	if cfg.Leaf != "" {
		host, port, err := net.SplitHostPort(cfg.Leaf)
		p, perr := strconv.Atoi(port)
		if err != nil || perr != nil || p < -1 || p > 65535 {
			return nil, fmt.Errorf("broker: leaf listener %q: want host:port (port -1 picks a free one)", cfg.Leaf)
		}
		opts.LeafNode = server.LeafNodeOpts{Host: host, Port: p, AuthTimeout: 2}
	}
	if err := secure(opts, chain); err != nil {
		return nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b := &Broker{log: log, chain: chain, srv: srv, share: cfg.Share}
	srv.SetLoggerV2(logAdapter{log, &b.violations}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("broker: server not ready within 10s")
	}
	if b.sys, err = b.connectSys(); err != nil {
		srv.Shutdown()
		return nil, err
	}
	log.Info("broker ready", "url", srv.ClientURL())
	return b, nil
}

func (b *Broker) connectSys() (*nats.Conn, error) {
	iss, err := IssuerFor(b.chain, keys.SYS)
	if err != nil {
		return nil, err
	}
	c, err := iss.Mint(keys.UserRequest{Name: "ring0-sys", Perms: bus.SysPerms("ring0-sys")}, time.Now())
	if err != nil {
		return nil, err
	}
	return bus.Connect("", c, nats.InProcessServer(b.srv))
}

// ClientURL is the URL clients dial.
func (b *Broker) ClientURL() string { return b.srv.ClientURL() }

// LeafURL is the URL ring 1 nodes connect to as leafnodes, or "" without a leaf listener.
func (b *Broker) LeafURL() string {
	v, err := b.srv.Varz(nil)
	if err != nil || v.LeafNode.Port == 0 {
		return ""
	}
	scheme := "nats://"
	if v.LeafNode.TLSRequired {
		scheme = "tls://"
	}
	return scheme + net.JoinHostPort(v.LeafNode.Host, strconv.Itoa(v.LeafNode.Port))
}

// ClusterAddr is the route listener's host:port, or "" without a cluster.
func (b *Broker) ClusterAddr() string {
	if a := b.srv.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// ClientURLs are the client URLs of every member of the cluster this server knows (its own
// first), for nodes to fail over between; without a cluster, its own.
func (b *Broker) ClientURLs() []string {
	own := b.ClientURL()
	urls := []string{own}
	if v, err := b.srv.Varz(nil); err == nil {
		for _, hp := range v.ClientConnectURLs {
			if u := scheme(own) + hp; u != own && !slices.Contains(urls, u) {
				urls = append(urls, u)
			}
		}
	}
	return urls
}

// Peers names the other members this server has routes to now, sorted.
func (b *Broker) Peers() []string {
	rz, err := b.srv.Routez(nil)
	if err != nil {
		return nil
	}
	var names []string
	for _, r := range rz.Routes {
		if n, ok := strings.CutPrefix(r.RemoteName, clusterName+"-"); ok && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Server is the embedded server, for in-process connections.
func (b *Broker) Server() *server.Server { return b.srv }

// Chain is the trust chain the broker serves.
func (b *Broker) Chain() *keys.Chain { return b.chain }

// Run serves until ctx ends, then shuts down.
func (b *Broker) Run(ctx context.Context) error {
	<-ctx.Done()
	return b.Close()
}

// Close shuts the server down and waits for it. It is safe to call more than once.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.sys.Close()
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	})
	return nil
}

// IssuerFor returns an issuer for the named account bounded by that account's grant in
// bus policy.
func IssuerFor(c *keys.Chain, account string) (*keys.Issuer, error) {
	a, err := c.Account(account)
	if err != nil {
		return nil, err
	}
	var g keys.Grant
	switch account {
	case keys.SYS:
		g = bus.SysGrant()
	case keys.RING0:
		g = bus.Ring0Grant()
	case keys.RING1:
		g = bus.Ring1Grant()
	case keys.OPS:
		g = bus.OpsGrant()
	default:
		g = bus.TenantGrant()
	}
	return a.Issuer(g), nil
}

// push sends an account JWT to the server and checks the server took it.
func (b *Broker) push(ctx context.Context, tok string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := b.sys.RequestWithContext(ctx, "$SYS.REQ.CLAIMS.UPDATE", []byte(tok))
	if err != nil {
		return fmt.Errorf("broker: push claims: %w", err)
	}
	var resp struct {
		Data  *struct{ Code int } `json:"data"`
		Error *struct {
			Code        int
			Description string
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return fmt.Errorf("broker: push claims: reply: %w", err)
	}
	if resp.Error != nil {
		return fmt.Errorf("broker: push claims: %d %s", resp.Error.Code, resp.Error.Description)
	}
	return nil
}

// Violations is the number of permission violations (refused publishes and subscriptions)
// and refused connections the server has reported since the broker started.
func (b *Broker) Violations() uint64 { return b.violations.Load() }

// logAdapter routes the server's log to slog. Permission violations and failed
// authentications are a client's mistake or attack, not the server's trouble: they are
// counted and logged as warnings.
type logAdapter struct {
	l          *slog.Logger
	violations *atomic.Uint64
}

func (a logAdapter) Noticef(f string, v ...any) { a.l.Info(fmt.Sprintf(f, v...), "component", "nats") }
func (a logAdapter) Warnf(f string, v ...any)   { a.l.Warn(fmt.Sprintf(f, v...), "component", "nats") }
func (a logAdapter) Fatalf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...), "component", "nats") }
func (a logAdapter) Debugf(f string, v ...any)  { a.l.Debug(fmt.Sprintf(f, v...), "component", "nats") }
func (a logAdapter) Tracef(f string, v ...any)  { a.l.Debug(fmt.Sprintf(f, v...), "component", "nats") }

func (a logAdapter) Errorf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	switch {
	case strings.Contains(msg, " Violation - ") || strings.HasSuffix(msg, "authentication error") ||
		strings.Contains(msg, "authentication error - User"):
		a.violations.Add(1)
		a.l.Warn(msg, "component", "nats")
		return
	case strings.HasPrefix(msg, "Error trying to connect to route"): // a member not up yet, or gone
		a.l.Warn(msg, "component", "nats")
		return
	}
	a.l.Error(msg, "component", "nats")
}
