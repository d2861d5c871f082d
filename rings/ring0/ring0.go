// Package ring0 is enjin's meta ring, `enjin ring0`: it runs the embedded broker, connects to
// the inventory (PostgreSQL), verifies and stores ring 1 observations, judges liveness,
// serves the meta HTTP API and its VM image store, and runs ring 1 nodes: as child processes
// on this machine (`process` strategy, restarted with backoff) or, for the `external`
// strategy, by issuing one-time join tokens they redeem for a credential.
//
// Several ring 0s may run as members of one cluster (Config.Cluster): their brokers routed
// into one NATS cluster, one database, ingest and the API on every member; liveness verdicts
// are made only by the member holding the leader lease (a PostgreSQL advisory lock) and carry
// its fencing epoch, which the store checks.
//
// Guarantees: an observation is acknowledged to its node only after the store committed it;
// a node is registered (keys first) before it is started; a node is declared down only after
// six missed heartbeats, never during the grace after ring 0's own start (or a new leader's
// takeover) nor when most nodes go quiet at once; a deposed leader's verdict is refused. Run
// returns after everything it started has stopped.
//
// cmd/enjin imports ring0.
package ring0

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"enjin"
	"enjin/bus"
	"enjin/bus/broker"
	"enjin/keys"
	"enjin/services/api"
	"enjin/services/images"
	"enjin/services/inventory"
	"enjin/supervisors/process"
)

// Config configures ring 0. Zero values are useful: loopback listeners on the default ports,
// a 5 s heartbeat.
type Config struct {
	StateDir    string
	DatabaseURL string
	Version     string        // of enjin, recorded in the backups this member makes
	NATSHost    string        // "" is 127.0.0.1
	NATSPort    int           // 0 is 4222; -1 picks a free port
	APIAddr     string        // "" is 127.0.0.1:7070; port 0 picks a free one
	Heartbeat   time.Duration // 0 is 5s
	Ring1       []Ring1Spec   // ring 1 nodes to run as child processes
	Executable  string        // the enjin binary for ring 1 children ("" disables launching)
	Htpasswd    string        // optional htpasswd file for the API (read-only users)
	CredsTTL    time.Duration // lifetime of ring 1 credentials; 0 is keys.DefaultTTL (nodes renew them)
	Apps        *AppsOptions  // if set, the ring 1 nodes ring 0 runs host tenants' apps
	ImageLimits images.Limits // bounds on each VM image upload; zero fields take images' defaults
	// MemoryMB is ring 0's memory budget in MiB (0 is DefaultMemoryMB): Go's memory limit
	// (unless GOMEMLIMIT is set), a fifth of it for observations waiting to be verified.
	MemoryMB int
	// Cluster, if set, makes this ring 0 one member of several: its broker routes to theirs
	// (they hold copies of one trust chain and share one database), ingest and the API are
	// spread over all, and the member holding the leader lease judges liveness on what every
	// member heard.
	Cluster *broker.Cluster
	// LeafAddr, if set (host:port), is where ring 1 nodes of remote sites connect to the
	// broker as NATS leafnodes.
	LeafAddr string
	// ACME, if set, names the ACME server custom domains' certificates are got from when a
	// tenant asks (enjin domains add --acme); its account key is kept in StateDir/keys.
	ACME   *ACMEOptions
	Logger *slog.Logger

	ingest ingestOptions
}

// DefaultMemoryMB is ring 0's memory budget unless configured: enough for 100,000 nodes
// heartbeating at more than ring 0 can commit.
const DefaultMemoryMB = 600

// Ring1Spec names a ring 1 node ring 0 runs on this machine.
type Ring1Spec struct {
	ID    enjin.NodeID
	Label string
	// Netns, if set, runs the node in that network namespace — a host simulated on this
	// machine (enjin up --ring1 N) — where Addr is its address: its app API and router listen
	// there, for ring 0 and the other hosts' routers, and it hosts no VMs.
	Netns string
	Addr  netip.Addr
	// Bridge, if set, is the node's instances' bridge instead of AppsOptions.Bridge: the
	// instances' namespaces are named for it, and /run/netns is the machine's.
	Bridge string
}

// Ring0 is a running meta ring.
type Ring0 struct {
	cfg    Config
	log    *slog.Logger
	broker *broker.Broker
	store  *inventory.Store
	verify *bus.Verifier
	judge  *judge
	ingest *ingester
	nc     *nats.Conn // RING0: events, commands, services
	ingNC  *nats.Conn // RING1: observations in, acknowledgements out
	api    *http.Server
	apiLn  net.Listener
	ca     *keys.CA // the trust chain's: TLS off loopback (tls.go)
	apiTLS bool     // whether the API serves TLS (it listens beyond loopback)

	membersOnce sync.Once
	membersHC   *http.Client // to the other members' APIs (membersClient)

	metrics  *metrics
	registry *prometheus.Registry // served at the API's /metrics
	images   *images.Store        // nil if it could not open: the image routes answer 503
	start    time.Time

	nodeMu      sync.Mutex // serializes joins and decommissions: neither sees half of the other
	vmKeys      sync.Map   // a VM's bus user key → its node id
	placeMu     sync.Mutex // serializes VM placements: two never take the same room
	hostMu      sync.Mutex // serializes adding hosts to tenants
	members     memberChanges
	moves       appMoves     // the leader's re-placing of apps off hosts that are down
	routesSent  routesSent   // what the leader last told each host about the apps elsewhere
	domainsSent routesSent   // what the leader last told each host of the custom domains
	acme        acmeState    // the leader's ACME work (certificates for custom domains)
	member      string       // names this member in the leader record (memberName)
	epoch       atomic.Int64 // the leader lease's fencing epoch while this member leads, else 0
	hearing     hearing      // what this member heard, to share with the others (clustered)
	learnMu     sync.Mutex
	unknown     map[enjin.NodeID]time.Time // nodes no member registered, not looked up until then

	mu       sync.Mutex
	sups     map[enjin.NodeID]*process.Supervisor
	appsAPIs map[enjin.NodeID]appsAPI
	fatal    chan error // a ring 1 node it runs could not start: Run stops with this
}

// New starts the broker, opens the store and prepares everything; Run starts serving.
func New(ctx context.Context, cfg Config) (*Ring0, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = "127.0.0.1:7070"
	}
	if cfg.DatabaseURL == "" {
		return nil, errors.New("ring0: no database URL")
	}
	if cfg.MemoryMB <= 0 {
		cfg.MemoryMB = DefaultMemoryMB
	}
	budget := int64(cfg.MemoryMB) << 20
	if cfg.ingest.RetryAfter <= 0 {
		cfg.ingest.RetryAfter = min(3*time.Second, cfg.Heartbeat)
	}
	if cfg.ingest.MaxRetryAfter <= 0 {
		cfg.ingest.MaxRetryAfter = 4 * cfg.Heartbeat
	}
	if cfg.ingest.QueueBytes <= 0 {
		cfg.ingest.QueueBytes = budget / 5
	}
	// Ingest allocates per message and keeps little: collect garbage less often, within the
	// memory budget less what is resident beyond the runtime's count (the binary's pages,
	// what it has not yet returned), unless the operator set GOGC or GOMEMLIMIT.
	tuneGC := os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == ""
	if tuneGC {
		debug.SetGCPercent(400)
		debug.SetMemoryLimit(budget - max(budget/10, 48<<20))
	}
	r := &Ring0{cfg: cfg, log: cfg.Logger.With("ring", 0), start: time.Now(), sups: map[enjin.NodeID]*process.Supervisor{},
		appsAPIs: map[enjin.NodeID]appsAPI{}, fatal: make(chan error, 1)}
	r.moves.kick, r.moves.carrier = make(chan struct{}, 1), make(chan struct{}, carriers)
	r.acme.kick = make(chan struct{}, 1)
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()
	var err error
	if r.store, err = inventory.Open(ctx, cfg.DatabaseURL, r.log); err != nil {
		return nil, err
	}
	if r.broker, err = broker.New(broker.Config{StateDir: cfg.StateDir, Host: cfg.NATSHost, Port: cfg.NATSPort, Logger: r.log, Cluster: cfg.Cluster, Share: r.store, Leaf: cfg.LeafAddr}); err != nil {
		return nil, err
	}
	if r.ca, err = r.broker.Chain().CA(); err != nil {
		return nil, err
	}
	if cfg.ACME != nil {
		if r.acme.issuer, err = newACME(cfg.StateDir, cfg.ACME, r); err != nil {
			return nil, err
		}
	}
	loaded, err := r.loadNodes(ctx)
	if err != nil {
		return nil, err
	}
	if tuneGC && loaded >= warmFleet {
		warmHeap(r.log)
	}
	if err := r.connect(); err != nil {
		return nil, err
	}
	// Where the app API of each ring 1 node run here listens is known before the meta API
	// serves: a node adopted from an earlier run is reachable at once.
	if cfg.Apps != nil {
		for _, spec := range cfg.Ring1 {
			if err := os.MkdirAll(r.nodeDir(spec.ID), 0o700); err != nil {
				return nil, fmt.Errorf("ring0: %w", err)
			}
			var o enjin.Ring1Options // launch makes the options the node starts with
			if err := r.appsOptions(spec, r.nodeDir(spec.ID), &o); err != nil {
				return nil, err
			}
		}
	}
	if err := r.listenAPI(); err != nil {
		return nil, err
	}
	r.member = memberName(r.apiLn.Addr().String())
	if cfg.Cluster != nil {
		r.member = cfg.Cluster.Member
	}
	ok = true
	return r, nil
}

// loadNodes registers every known attestation key with the verifier, at its stored
// high-water mark, and seeds liveness. It returns how many nodes it loaded.
func (r *Ring0) loadNodes(ctx context.Context) (int, error) {
	nks, err := r.store.NodeKeys(ctx)
	if err != nil {
		return 0, err
	}
	r.verify = bus.NewVerifier(0)
	for _, k := range nks {
		if err := r.verify.Register(k.Node, k.AttestPub, k.LastSeq); err != nil {
			r.log.Warn("node with an unusable attestation key", "node", k.Node, "err", err)
			continue
		}
		// A copy of what was stored last, sent again because this member stopped before
		// its answer went out, is acknowledged, not refused as a replay.
		r.verify.SetLatest(k.Node, k.LastSeq, k.LastSig)
	}
	r.judge = newJudge(r.cfg.Heartbeat)
	r.judge.load(nks, time.Now())
	r.ingest = newIngester(r.cfg.ingest, r.store, r.verify, r.log, r.judge.seen)
	r.metrics, r.registry = newMetrics(r)
	r.ingest.ackDelay = r.metrics.ackDelay
	r.ingest.byKey, r.ingest.heard = r.vmByKey, r.judge.heard
	if r.cfg.Cluster != nil { // the others hear of it too
		r.ingest.seen = func(n enjin.NodeID, at time.Time) { r.judge.seen(n, at); r.hearing.saw(n, at) }
		r.ingest.heard = func(n enjin.NodeID, until time.Time) { r.judge.heard(n, until); r.hearing.deferred(n, until) }
		r.ingest.learn, r.unknown = r.learn, map[enjin.NodeID]time.Time{}
	}
	if err := r.loadVMKeys(ctx); err != nil {
		return 0, err
	}
	r.log.Info("nodes loaded", "n", len(nks))
	return len(nks), nil
}

// connect opens ring 0's bus connections (in process): its own in RING0, and its ingest
// user's in RING1, subscribed to observations in a queue group (so several ring 0
// supervisors share the work).
func (r *Ring0) connect() error {
	var err error
	if r.nc, err = r.dial(keys.RING0, "ring0", bus.Ring0Perms("ring0")); err != nil {
		return err
	}
	if r.ingNC, err = r.dial(keys.RING1, bus.IngestUser, bus.Ring0IngestPerms()); err != nil {
		return err
	}
	// VMs sign their own heartbeats, which reach RING1 from their tenants' accounts. Ring 1
	// nodes' subject is subscribed twice in the queue group on purpose: each subscription has
	// its own callback goroutine, so one that is descheduled does not hold the other's
	// messages back. What waits for a callback (which only queues) is bounded like the queue.
	var subs []*nats.Subscription
	for _, subj := range []string{bus.Ring1ObsAll, bus.Ring1ObsAll, bus.R1FromTenantObsAll} {
		sub, err := r.ingNC.QueueSubscribe(subj, "ring0", r.ingest.handle)
		if err != nil {
			return fmt.Errorf("ring0: subscribe %s: %w", subj, err)
		}
		if err := sub.SetPendingLimits(-1, int(r.ingest.opts.QueueBytes)); err != nil {
			return err
		}
		subs = append(subs, sub)
	}
	r.ingest.subs.Store(&subs)
	if err := r.servePorts(); err != nil {
		return err
	}
	if err := r.serveRevoke(); err != nil {
		return err
	}
	if err := r.serveImages(); err != nil {
		return err
	}
	return r.serveRenew()
}

func (r *Ring0) dial(account, name string, perms keys.Permissions) (*nats.Conn, error) {
	iss, err := broker.IssuerFor(r.broker.Chain(), account)
	if err != nil {
		return nil, err
	}
	c, err := iss.Mint(keys.UserRequest{Name: name, Perms: perms}, time.Now())
	if err != nil {
		return nil, err
	}
	return bus.Connect("", c, nats.InProcessServer(r.broker.Server()))
}

func (r *Ring0) listenAPI() error {
	checkers := []api.Checker{}
	tokenFile := filepath.Join(r.cfg.StateDir, "admin.token")
	if err := ensureToken(tokenFile); err != nil {
		return err
	}
	admin, err := api.AdminTokenFile(tokenFile)
	if err != nil {
		return err
	}
	checkers = append(checkers, admin)
	if r.cfg.Htpasswd != "" {
		hp, err := api.HtpasswdFile(r.cfg.Htpasswd, nil)
		if err != nil {
			return err
		}
		checkers = append(checkers, hp)
	}
	r.openImages()
	if r.apiLn, err = net.Listen("tcp", r.cfg.APIAddr); err != nil {
		return fmt.Errorf("ring0: api: %w", err)
	}
	// /metrics needs no token only where nobody but this machine reaches it.
	loopback := r.apiLn.Addr().(*net.TCPAddr).IP.IsLoopback()
	if !loopback {
		if err := r.secureAPI(); err != nil {
			r.apiLn.Close()
			return err
		}
	}
	var appsDomain string
	if r.cfg.Apps != nil {
		appsDomain = r.cfg.Apps.AppsDomain
	}
	a, err := api.New(api.Config{Store: r.store, Ring0: r, Checkers: checkers, Logger: r.log,
		Images: r.images, ImageLimits: r.cfg.ImageLimits, VMs: r, Metrics: r.registry, MetricsOpen: loopback,
		CAFingerprint: r.ca.Fingerprint(), Sealer: r.broker.Chain(), AppsDomain: appsDomain, ACME: r.acme.issuer != nil,
		DomainsChanged: func() { r.moves.again(); r.acme.again() }, Backup: r.backup})
	if err != nil {
		r.apiLn.Close()
		return err
	}
	r.api = api.NewServer(r.apiLn.Addr().String(), a.Handler(), api.Timeouts{})
	r.api.RegisterOnShutdown(func() { _ = a.Close() }) // the web view's event streams end
	return nil
}

// APIURL is the meta API's base URL.
func (r *Ring0) APIURL() string {
	if r.apiTLS {
		return "https://" + r.apiLn.Addr().String()
	}
	return "http://" + r.apiLn.Addr().String()
}

// NATSURL is the broker's client URL.
func (r *Ring0) NATSURL() string { return r.broker.ClientURL() }

// AdminTokenFile is the path of the API's admin token.
func (r *Ring0) AdminTokenFile() string { return filepath.Join(r.cfg.StateDir, "admin.token") }

// Store is the inventory ring 0 writes (for tests and benchmarks).
func (r *Ring0) Store() *inventory.Store { return r.store }

// Stats are ring 0's ingest counters.
type Stats struct {
	Committed uint64
	Failed    uint64
	Deferred  uint64 // refused for now, the ingest queue being full: the nodes send them again
	Verifier  bus.Stats
}

// Stats returns the ingest counters so far.
func (r *Ring0) Stats() Stats {
	return Stats{Committed: r.ingest.committed.Load(), Failed: r.ingest.failed.Load(), Deferred: r.ingest.deferred.Load(), Verifier: r.verify.Stats()}
}

// Run serves until ctx ends, then stops everything it started and returns.
func (r *Ring0) Run(ctx context.Context) error {
	defer r.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { r.ingest.run(ctx) }) // ends with ctx
	wg.Go(func() { r.lead(ctx) })       // ends with ctx
	if r.cfg.Cluster != nil {
		wg.Go(func() { // ends with ctx
			if err := r.share(ctx, r.cfg.Heartbeat/5); err != nil {
				r.fail(fmt.Errorf("ring0: share with the other members: %w", err))
			}
		})
	}
	wg.Go(func() { r.maintenance(ctx) })     // ends with ctx
	wg.Go(func() { r.announce(ctx) })        // ends with ctx
	wg.Go(func() { r.replicateImages(ctx) }) // ends with ctx
	apiErr := make(chan error, 1)
	wg.Go(func() { apiErr <- r.api.Serve(r.apiLn) }) // ends at Shutdown below
	for _, spec := range r.cfg.Ring1 {
		if err := r.launch(ctx, &wg, spec); err != nil {
			r.log.Error("ring 1 node not started", "node", spec.ID, "err", err)
		}
	}
	r.log.Info("ring 0 ready", "api", r.APIURL(), "nats", r.NATSURL())
	var err error
	select {
	case <-ctx.Done():
	case err = <-apiErr:
		err = fmt.Errorf("ring0: api: %w", err)
	case err = <-r.fatal:
	}
	cancel() // everything started here stops: ring 1 nodes, ingest, liveness
	sctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	_ = r.api.Shutdown(sctx)
	wg.Wait()
	return err
}

// fail makes Run stop with err (the first one wins).
func (r *Ring0) fail(err error) {
	select {
	case r.fatal <- err:
	default:
	}
}

func (r *Ring0) event(kind string, v any) {
	if err := bus.Publish(r.nc, bus.Event(kind), v); err != nil {
		r.log.Warn("event not published", "kind", kind, "err", err)
	}
}

// Close releases what New opened, for a Ring0 that will not Run (Run releases it itself).
func (r *Ring0) Close() { r.close() }

func (r *Ring0) close() {
	if r.ingNC != nil {
		r.ingNC.Close()
	}
	if r.nc != nil {
		r.nc.Close()
	}
	if r.apiLn != nil {
		r.apiLn.Close()
	}
	if r.broker != nil {
		r.broker.Close()
	}
	if r.store != nil {
		r.store.Close()
	}
}
