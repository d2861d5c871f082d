// Package ring1 is the bus side of a ring 1 node: an infrastructure host that ring 0
// supervises. Run connects to the broker as the node's RING1 user, answers ring 0's commands
// (ping, describe, drain) and sends a signed heartbeat observation at a fixed period, until
// its context ends or its credential stops being accepted. Join is the client half of the
// `external` supervision strategy: it trades a one-time join token for the node's credential.
//
// Guarantees. Every heartbeat is signed with the node's attestation key, never with its NATS
// auth key. A heartbeat is sent as a request; ring 0 acknowledges it only after its store has
// committed it. One that is not acknowledged stays in a bounded backlog and is sent again,
// oldest first, before newer ones, so a node outlives a ring 0 outage without losing what it
// observed meanwhile; so do the revocations it asks ring 0 for (kept on disk until ring 0
// confirms them). It is sent again signed afresh, under a new sequence: if only the
// acknowledgement was lost, ring 0 stores the observation twice (its payload, with the time
// it was made, the same). The first heartbeat after a (re)connect is sent only once the
// command subscription is in place, so a node ring 0 hears from can be commanded. Commands are idempotent; drain is kept until the process stops. A revoked or
// expired credential ends Run with an error wrapping nats.ErrAuthRevoked or
// nats.ErrAuthExpired (see bus.Terminal); any other disconnection is retried by nats.go.
//
// Package ring1 imports bus, keys, rings and the services and supervisors a host runs (apps,
// the router, DNS, VMs), never the database driver. cmd/enjin (the `enjin ring1` command)
// and tests import it.
package ring1

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/services/apphost"
	"enjin/services/vmhost"
)

// DefaultHeartbeat is the heartbeat period when Config.Heartbeat is zero.
const DefaultHeartbeat = enjin.DefaultHeartbeat

// servers is the URL list the node connects with: NATSURL first, then the other members'.
func (c Config) servers() string {
	urls := []string{c.NATSURL}
	for _, u := range c.NATSServers {
		if u != "" && !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	return strings.Join(urls, ",")
}

// flushTimeout bounds the wait for the broker to confirm the command subscription.
const flushTimeout = 5 * time.Second

// Config describes one ring 1 node.
type Config struct {
	Node    enjin.NodeID
	NATSURL string
	// NATSServers are every ring 0 member's broker (NATSURL among them) when ring 0 runs as
	// several: the node connects to any and fails over between them, even when it starts
	// while the member it joined through is down.
	NATSServers []string
	Creds       *keys.Creds       // the node's RING1 user credential (JWT and seed), named Node
	Attestation *keys.Attestation // the node's observation-signing key, distinct from the auth key
	Heartbeat   time.Duration     // 0 means DefaultHeartbeat
	Logger      *slog.Logger      // nil discards
	// CredsPath, if set, is where renewed credentials are written (0600), so a restarted
	// node starts with the newest.
	CredsPath string
	// Dir is where the node keeps keys it makes itself (scoped signing keys of the tenants
	// it hosts); "" means it hosts no tenants.
	Dir string
	// Apps, if set, makes the node host tenants' apps.
	Apps *AppsConfig
	// Underlay is the address the node carries tenant networks from (VXLAN); unset, the
	// address it reaches the bus from.
	Underlay netip.Addr
	// NoVMs keeps the node from hosting VMs even where libvirtd answers (a host whose
	// network namespace is not libvirtd's cannot wire their NICs).
	NoVMs bool
	// Leaf, if set, are ring 0 hubs' leafnode URLs: the node reaches the bus through a server
	// of its own, a leafnode of theirs (a remote site's node), rather than as a client of
	// NATSURL. It needs CredsPath.
	Leaf []string
	// NATUplinks are the interfaces tenant networks with NAT reach beyond by; none: the
	// interfaces of the IPv4 default routes or, without one, the underlay's.
	NATUplinks []string
	// Ring0API is ring 0's API (an http:// base URL): VMs this node runs as ring 1 hosts join
	// through a relay to it on the bridge's gateway. "": the node makes no such VMs.
	Ring0API string
	// CA, if set, is the CA (PEM) the node trusts ring 0's brokers and API by; they serve TLS
	// when they listen beyond loopback.
	CA []byte
}

// Node is a ring 1 node's connection to ring 0. Run it once at a time.
type Node struct {
	cfg     Config
	log     *slog.Logger
	signer  *bus.Signer
	started time.Time
	cmds    map[string]func(*nats.Msg) (any, error) // by command subject
	usage   *sampler                                // used by the heartbeat goroutine only

	running  atomic.Bool
	draining atomic.Bool
	kick     chan struct{} // asks for a heartbeat now; buffered 1

	acked, unacked, refused, lastSeq atomic.Uint64
	waiting, dropped, deferred       atomic.Uint64
	retryAt                          atomic.Int64                 // Unix ns: ring 0 asked to wait until then
	revokes                          *revokeQueue                 // revocations ring 0 has yet to confirm; nil without Dir
	jwt                              atomic.Pointer[string]       // the current credential; see renewals
	apps                             atomic.Pointer[apphost.Host] // set while the node hosts apps
	vms                              atomic.Pointer[vmhost.Host]  // set while the node hosts VMs
	underlay                         atomic.Value                 // string: the underlay address, once known
	routes                           atomic.Pointer[routes]       // set while the node hosts apps
	domainParts                      domainParts                  // the parts of the custom domains ring 0 is sending
	leaf                             *server.Server               // the node's own leaf server (Config.Leaf), while it runs
	leafDenied                       atomic.Int64                 // the hubs' refusals of the leaf since the last acknowledged heartbeat
}

// closeLeaf stops the node's leaf server, if it runs one.
func (n *Node) closeLeaf() {
	if n.leaf != nil {
		n.leaf.Shutdown()
		n.leaf = nil
	}
}

// Stats counts the node's heartbeats since New.
type Stats struct {
	Acked        uint64 `json:"acked"`          // acknowledged by ring 0 (stored)
	Unacked      uint64 `json:"unacked"`        // sent, but no answer in time
	Refused      uint64 `json:"refused"`        // ring 0 answered with an error
	LastAckedSeq uint64 `json:"last_acked_seq"` // Obs-Seq of the last acknowledged heartbeat
	Backlog      uint64 `json:"backlog"`        // observations waiting to be acknowledged
	Dropped      uint64 `json:"dropped"`        // observations dropped from a full backlog
	Deferred     uint64 `json:"deferred"`       // ring 0, overloaded, asked to send again later (kept)
}

// New checks cfg and returns a node ready to Run. It does no I/O.
func New(cfg Config) (*Node, error) {
	var errs []error
	if err := cfg.Node.Validate(); err != nil {
		errs = append(errs, err)
	}
	if cfg.NATSURL == "" {
		errs = append(errs, errors.New("no NATS URL"))
	}
	switch {
	case cfg.Creds == nil:
		errs = append(errs, errors.New("no credential"))
	case cfg.Creds.Seed == nil || cfg.Creds.JWT == "":
		errs = append(errs, errors.New("credential lacks its JWT or seed"))
	case cfg.Creds.Name != string(cfg.Node):
		// The inbox prefix, and so every reply, follows the credential's name.
		errs = append(errs, fmt.Errorf("credential is for %q, not %q", cfg.Creds.Name, cfg.Node))
	}
	if cfg.Attestation == nil {
		errs = append(errs, errors.New("no attestation key"))
	}
	if cfg.Heartbeat < 0 {
		errs = append(errs, fmt.Errorf("heartbeat %v is negative", cfg.Heartbeat))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("ring1: config: %w", errors.Join(errs...))
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		cfg:     cfg,
		log:     log.With("ring", int(enjin.Ring1), "node", string(cfg.Node)),
		signer:  bus.NewSigner(cfg.Node, cfg.Attestation),
		started: time.Now(),
		usage:   newSampler(),
		kick:    make(chan struct{}, 1),
	}
	if cfg.Dir != "" {
		n.revokes = newRevokeQueue(filepath.Join(cfg.Dir, "revokes.json"), n.log)
	}
	n.cmds = map[string]func(*nats.Msg) (any, error){
		bus.Ring1Cmd(cfg.Node, bus.VerbPing):      n.ping,
		bus.Ring1Cmd(cfg.Node, bus.VerbDescribe):  n.describe,
		bus.Ring1Cmd(cfg.Node, bus.VerbDrain):     n.drain,
		bus.Ring1Cmd(cfg.Node, bus.VerbTenantKey): n.tenantKey,
		bus.Ring1Cmd(cfg.Node, bus.VerbNetworks):  n.networksChanged,
		bus.Ring1Cmd(cfg.Node, bus.VerbBid):       n.bid,
		bus.Ring1Cmd(cfg.Node, bus.VerbRoutes):    n.peerRoutes,
		bus.Ring1Cmd(cfg.Node, bus.VerbDomains):   n.domains,
	}
	for subj, fn := range n.vmCommands() {
		n.cmds[subj] = fn
	}
	return n, nil
}

// Stats returns the heartbeat counters so far.
func (n *Node) Stats() Stats {
	return Stats{
		Acked:        n.acked.Load(),
		Unacked:      n.unacked.Load(),
		Refused:      n.refused.Load(),
		LastAckedSeq: n.lastSeq.Load(),
		Backlog:      n.waiting.Load(),
		Dropped:      n.dropped.Load(),
		Deferred:     n.deferred.Load(),
	}
}

// Run connects to the broker, serves commands and sends heartbeats until ctx ends (it then
// returns nil) or the connection closes for good: a revoked or expired credential gives an
// error for which bus.Terminal holds, so the supervisor knows a restart will not help.
func (n *Node) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return fmt.Errorf("ring1 %s: already running", n.cfg.Node)
	}
	defer n.running.Store(false)

	terminal := make(chan error, 1)
	closed := make(chan struct{}, 1)
	kp, err := n.cfg.Creds.KeyPair()
	if err != nil {
		return fmt.Errorf("ring1 %s: %w", n.cfg.Node, err)
	}
	n.jwt.CompareAndSwap(nil, &n.cfg.Creds.JWT)
	handlers := n.connHandlers(terminal, closed)
	var nc *nats.Conn
	if len(n.cfg.Leaf) > 0 {
		nc, err = n.leafConnect(func(err error) { signal(terminal, err) }, handlers...)
		defer n.closeLeaf()
	} else { // reconnects present the newest credential
		nc, err = bus.Connect(n.cfg.servers(), n.cfg.Creds, append(append(handlers, n.cfg.busTLS()...), nats.UserJWT(n.currentJWT, kp.Sign))...)
	}
	if err != nil {
		return fmt.Errorf("ring1 %s: %w", n.cfg.Node, err)
	}
	defer nc.Close()
	if _, err := bus.Handle(nc, bus.Ring1Cmds(n.cfg.Node), "", n.command); err != nil {
		return fmt.Errorf("ring1 %s: %w", n.cfg.Node, err)
	}
	// The first heartbeat must not reach ring 0 before the node can take commands.
	fctx, cancel := context.WithTimeout(ctx, flushTimeout)
	err = nc.FlushWithContext(fctx)
	cancel()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("ring1 %s: subscribe to commands: %w", n.cfg.Node, err)
	}
	n.log.Info("connected", "url", nc.ConnectedUrlRedacted(), "heartbeat", n.cfg.Heartbeat)

	hctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	// Ends when hctx is cancelled: when ctx ends or Run is about to return.
	wg.Go(func() { n.renewals(hctx, nc) })
	appsErr := make(chan error, 1)
	if n.cfg.Apps != nil {
		ready := make(chan error, 1)
		wg.Go(func() { // ends with hctx, after stopping every app instance
			if err := n.runApps(hctx, nc, ready); err != nil {
				ready <- err
				appsErr <- err
			}
		})
		if err := <-ready; err != nil {
			return fmt.Errorf("ring1 %s: apps: %w", n.cfg.Node, err)
		}
	}
	// Heartbeats start once the node is whole: ring 0 takes the first as "up and serving".
	wg.Go(func() { n.heartbeats(hctx, nc) }) // ends with hctx too

	select {
	case <-ctx.Done():
		n.log.Info("stopping", "cause", context.Cause(ctx))
		return nil
	case err := <-appsErr:
		return fmt.Errorf("ring1 %s: apps: %w", n.cfg.Node, err)
	case err := <-terminal:
		return fmt.Errorf("ring1 %s: credential no longer accepted: %w", n.cfg.Node, err)
	case <-closed:
		// The error callback runs before the closed callback, on the same goroutine.
		select {
		case err := <-terminal:
			return fmt.Errorf("ring1 %s: credential no longer accepted: %w", n.cfg.Node, err)
		default:
		}
		err := nc.LastError()
		if err == nil {
			err = nats.ErrConnectionClosed
		}
		return fmt.Errorf("ring1 %s: connection closed: %w", n.cfg.Node, err)
	}
}

// connHandlers are the connection's callbacks: a terminal error (a revoked or expired
// credential) goes to terminal, the connection's end to closed, and a reconnect sends a
// heartbeat at once.
func (n *Node) connHandlers(terminal chan<- error, closed chan<- struct{}) []nats.Option {
	return []nats.Option{
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if bus.Terminal(err) {
				signal(terminal, err)
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { signal(closed, struct{}{}) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.log.Info("disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			n.log.Info("reconnected", "url", nc.ConnectedUrlRedacted())
			n.heartbeatNow() // nats.go has already restored the command subscription
		}),
	}
}

// signal sends v on a buffered channel without waiting; one pending value is enough.
func signal[T any](ch chan<- T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// heartbeatNow asks the heartbeat goroutine for a heartbeat without waiting for the ticker.
func (n *Node) heartbeatNow() { signal(n.kick, struct{}{}) }

func (n *Node) state() enjin.NodeState {
	if n.draining.Load() {
		return enjin.StateDraining
	}
	return enjin.StateUp
}
