// Package router is ring 1's HTTP router for tenants' apps: a reverse proxy that sends a request
// for Host <app>.<tenant>.<apps domain> (any case, any port) to one of the healthy backends of
// that app, the one with the fewest requests in flight, ties served round robin.
//
// The route table is an immutable map behind an atomic pointer: routing a request takes no lock,
// and SetRoute swaps an app's backend set in one step. What deploys rely on:
//
//   - a request is only sent to a backend that was in its app's set when the request was routed;
//   - a request already in flight on a backend is finished there, whatever happens to the table;
//   - Inflight says how many requests a backend is serving, so a caller can drain an old release
//     (wait for 0, woken by Drained) before stopping it. A backend removed from every set gets
//     no new request once SetRoute has returned.
//
// A custom domain (SetDomains) routes to its app too: in plain HTTP, or answered 308 to https
// when the domain asks for it; and on the TLS listener (ServeTLS), where the handshake picks
// the domain's certificate by the name the client sends (SNI; a name without one fails the
// handshake) and a request for another host than that name gets 421.
//
// Unknown hosts get 404. A request for a known app none of whose backends can take it (none
// healthy, or the only ones refusing connections: an instance restarting) is held for its
// app's set to change, up to Config.Hold from its arrival, and then answered 503 with
// Retry-After. When an upstream connection
// fails before any byte of the response arrived, a GET, HEAD or OPTIONS request without a body is
// retried once on another backend of the set (or on a fresh connection when the only backend's
// kept-alive connection had gone stale); a connection that could not be dialed is retried for
// any request, since nothing was sent. Otherwise the client gets 502, or 504 when the backend
// did not answer within UpstreamTimeout (never retried: it may still be working on it). A
// backend that failed is picked last for a second.
//
// A backend may be another host's router (Backend.Peer), for an app that runs there: the
// request goes on with its Host. Every request the router sends carries Enjin-Hop (the
// client's is dropped), and one that arrives with it is never sent to a peer router: a
// request crosses at most one router to another, however stale two routers' word of where
// an app runs.
//
// A request from a peer router (its address is a Peer backend's, and it carries Enjin-Hop)
// keeps the client address that router wrote in X-Real-IP: the app sees who asked, not
// which router passed it on. From anyone else, X-Real-IP is a client's claim, and dropped.
//
// Requests go upstream in origin form over kept-alive HTTP/1.1 connections, with hop-by-hop
// fields (and those Connection names) removed, every forwarding field the client sent
// (X-Forwarded-*, X-Real-IP, Forwarded and kin) dropped and replaced by the router's own —
// X-Forwarded-For and X-Real-IP naming the connecting address, X-Forwarded-Proto,
// X-Forwarded-Host, Forwarded — and the body framed by the router: one Content-Length, or
// chunked.
// Bodies stream both ways; nothing is buffered whole. A WebSocket handshake is passed on,
// and becomes a tunnel if the app accepts it (see upgrade.go); no other Upgrade is.
//
// The client side is a small HTTP/1.1 server written for this proxy, not net/http: buffers are
// kept per connection and pooled, so a proxied request allocates nothing, and sockets are read
// and written with raw non-blocking system calls on the runtime's poller (see rawIO). It is
// strict where leniency enables request smuggling: it refuses Content-Length together with
// Transfer-Encoding, repeated Content-Length, any transfer coding but chunked, malformed chunk
// sizes, obs-fold, bare LF, control bytes in fields and a missing, repeated or malformed Host,
// with 400 and a closed connection; oversized heads get 431, heads slower than
// ReadHeaderTimeout 408.
//
// Only ring 1 (and package bench, `enjin bench router`) imports router; it imports only the standard
// library.
package router

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config configures a Router. The zero value of every field but AppsDomain is useful.
type Config struct {
	// Addr is the TCP address Run listens on; "" means ":http".
	Addr string
	// AppsDomain is the suffix of app hosts: app.tenant.AppsDomain. Required.
	AppsDomain string
	// Logger receives one Info line per request (host, method, path, status, bytes, duration,
	// backend) and Error lines for recovered panics. Nil logs nothing; a handler disabled at
	// Info costs next to nothing. For a busy router give it a buffered writer (see LogBuffer).
	Logger *slog.Logger
	// MaxHeaderBytes caps a request's line and header fields together; larger gets 431.
	// Zero means 32 KiB.
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds the time from a request's first byte to the end of its head;
	// a slower client gets 408 and is disconnected. Zero means 10 s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a kept-alive client connection left idle, and bounds each wait for
	// request body bytes and for the client to take response bytes. Zero means 60 s. Like
	// UpstreamTimeout it cuts a wait off after between half of it and all of it: deadlines are
	// moved only when less than half is left, which spares a call per request.
	IdleTimeout time.Duration
	// UpstreamTimeout bounds dialing a backend (at most 5 s) and every wait on it: for the
	// response head, and for each piece of the bodies. Zero means 60 s.
	UpstreamTimeout time.Duration
	// ShutdownTimeout is how long Serve lets requests in flight finish once its context ends,
	// before it closes their connections. Zero means 10 s.
	ShutdownTimeout time.Duration
	// Hold is how long a request for a known app waits, from its arrival, while none of the
	// app's instances can take it — none is healthy, or the only ones refuse connections (an
	// instance restarting, a single-instance release being replaced) — for the app's set to
	// change. After that it is answered 503 with Retry-After. Zero means 2 s; negative, no
	// wait.
	Hold time.Duration
}

// Stats are a router's counters since New.
type Stats struct {
	Requests       uint64    // responses written, including the router's own errors
	ByClass        [6]uint64 // responses by status class: ByClass[2] counts 2xx, ByClass[0] odd ones
	UpstreamErrors uint64    // dial, write, read or protocol failures of a backend
	Retries        uint64    // requests sent a second time after an upstream failure
	Held           uint64    // requests that waited for an instance of their app (Config.Hold)
	Panics         uint64    // panics recovered (each closed one client connection)
	Conns          int64     // client connections open now
}

// Router routes requests for tenants' apps to their backends. Its methods are safe for
// concurrent use.
type Router struct {
	cfg    Config
	suffix string // "." + AppsDomain, lower case
	log    *slog.Logger
	dialer net.Dialer

	table atomic.Pointer[table]
	regMu sync.Mutex                         // serializes table writers; guards reg
	reg   map[string][]*upstream             // every upstream that is routed to or still draining, by backend ID
	peers atomic.Pointer[map[netip.Addr]int] // the peer routers' addresses, each with its live upstreams; swapped under regMu

	drainMu sync.Mutex
	drained chan struct{} // closed when a retired upstream's last request ends (see Drained); nil until asked for

	domains    atomic.Pointer[map[string]*domain]           // custom domains by name; swapped whole by SetDomains
	challenges atomic.Pointer[map[string]map[string]string] // pending ACME HTTP-01 answers: domain → token → key authorization

	ln       atomic.Pointer[net.Listener]
	tlsLn    atomic.Pointer[net.Listener]
	closing  atomic.Bool // set once, under connMu, when the router shuts down
	connMu   sync.Mutex
	conns    map[*conn]struct{}
	lns      []net.Listener // every listener a Serve or ServeTLS accepts on; guarded by connMu
	connWG   sync.WaitGroup // added to only under connMu and before closing is set
	shutOnce sync.Once

	stats counters
}

// counters are padded apart so that cores updating different ones do not share a cache line.
type counters struct {
	byClass  [6]atomic.Uint64
	_        [16]byte
	upErrors atomic.Uint64
	retries  atomic.Uint64
	held     atomic.Uint64
	panics   atomic.Uint64
	conns    atomic.Int64
	_        [32]byte
}

// New checks cfg and returns a Router with an empty table.
func New(cfg Config) (*Router, error) {
	d := strings.ToLower(strings.Trim(cfg.AppsDomain, "."))
	if d == "" {
		return nil, errors.New("router: AppsDomain is required")
	}
	if !validHost([]byte(d)) {
		return nil, fmt.Errorf("router: AppsDomain %q is not a host name", cfg.AppsDomain)
	}
	if cfg.Addr == "" {
		cfg.Addr = ":http"
	}
	setDefault(&cfg.ReadHeaderTimeout, 10*time.Second)
	setDefault(&cfg.IdleTimeout, 60*time.Second)
	setDefault(&cfg.UpstreamTimeout, 60*time.Second)
	setDefault(&cfg.ShutdownTimeout, 10*time.Second)
	if cfg.Hold == 0 {
		cfg.Hold = 2 * time.Second
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 32 << 10
	}
	r := &Router{
		cfg:    cfg,
		suffix: "." + d,
		log:    cfg.Logger,
		dialer: net.Dialer{Timeout: min(cfg.UpstreamTimeout, 5*time.Second), KeepAlive: 30 * time.Second},
		reg:    map[string][]*upstream{},
		conns:  map[*conn]struct{}{},
	}
	r.table.Store(&table{routes: map[string]*route{}})
	return r, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// Run listens on the configured address and serves until ctx ends, then shuts down gracefully.
func (r *Router) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", r.cfg.Addr)
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	return r.Serve(ctx, ln)
}

// Addr returns the address the router listens on, or nil before Run or Serve started.
func (r *Router) Addr() net.Addr {
	if ln := r.ln.Load(); ln != nil {
		return (*ln).Addr()
	}
	return nil
}

// Serve accepts connections on ln until ctx ends. It then closes ln, lets requests in flight
// finish (for at most ShutdownTimeout), closes every connection and returns nil. It closes ln
// and returns an error if accepting fails for good. The router shuts down as a whole: when
// one of its Serve or ServeTLS calls ends, the others stop accepting too, and each returns
// once the connections are gone. A router that has shut down serves no more.
func (r *Router) Serve(ctx context.Context, ln net.Listener) error {
	r.ln.Store(&ln)
	return r.serve(ctx, ln, nil)
}

// errShutDown is what Serve returns on a router that has already shut down.
var errShutDown = errors.New("router: shut down")

// serve is Serve, and with tc ServeTLS: each connection accepted is a TLS server's.
func (r *Router) serve(ctx context.Context, ln net.Listener, tc *tls.Config) error {
	r.connMu.Lock()
	closing := r.closing.Load()
	if !closing {
		r.lns = append(r.lns, ln)
	}
	r.connMu.Unlock()
	if closing {
		ln.Close()
		return errShutDown
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || r.closing.Load() {
				r.shutdown()
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay) // out of file descriptors: let connections close
				continue
			}
			ln.Close()
			r.shutdown()
			return fmt.Errorf("router: accept: %w", err)
		}
		delay = 0
		var c *conn
		if tc != nil {
			c = r.newConn(tls.Server(nc, tc))
		} else {
			c = r.newConn(nc)
		}
		if !r.track(c) {
			nc.Close() // accepted as the router began to shut down; ln is closed now
			c.recycle()
			continue
		}
		go c.serve() // ends when the client connection is closed
	}
}

// track counts c among the router's connections, unless the router is shutting down. Under
// connMu, which shutdown holds while it sets closing, so that every connWG.Add comes before
// shutdown's Wait — whichever accept loop it comes from.
func (r *Router) track(c *conn) bool {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	if r.closing.Load() {
		return false
	}
	r.conns[c] = struct{}{}
	r.connWG.Add(1)
	return true
}

// shutdown shuts the router down once, whichever Serve or ServeTLS ends first; the others'
// calls wait until it is done.
func (r *Router) shutdown() { r.shutOnce.Do(r.closeDown) }

// closeDown closes every listener, wakes idle connections so they close, waits for busy ones
// to finish their request, and after ShutdownTimeout closes whatever is left.
func (r *Router) closeDown() {
	r.connMu.Lock()
	r.closing.Store(true)
	for _, ln := range r.lns {
		ln.Close()
	}
	for c := range r.conns {
		if c.idle.Load() {
			c.nc.SetReadDeadline(aLongTimeAgo)
		}
	}
	r.connMu.Unlock()
	done := make(chan struct{})
	go func() { r.connWG.Wait(); close(done) }() // ends when every connection has ended
	select {
	case <-done:
		return
	case <-time.After(r.cfg.ShutdownTimeout):
	}
	r.connMu.Lock()
	for c := range r.conns {
		c.nc.Close()
	}
	r.connMu.Unlock()
	<-done
}

var aLongTimeAgo = time.Unix(1, 0)

// Stats returns the router's counters.
func (r *Router) Stats() Stats {
	s := Stats{
		UpstreamErrors: r.stats.upErrors.Load(),
		Retries:        r.stats.retries.Load(),
		Held:           r.stats.held.Load(),
		Panics:         r.stats.panics.Load(),
		Conns:          r.stats.conns.Load(),
	}
	for i := range s.ByClass {
		s.ByClass[i] = r.stats.byClass[i].Load()
		s.Requests += s.ByClass[i]
	}
	return s
}

// String formats s on one line, for logs and tests.
func (s Stats) String() string {
	return fmt.Sprintf("requests=%d 1xx=%d 2xx=%d 3xx=%d 4xx=%d 5xx=%d upstream_errors=%d retries=%d held=%d panics=%d conns=%d",
		s.Requests, s.ByClass[1], s.ByClass[2], s.ByClass[3], s.ByClass[4], s.ByClass[5],
		s.UpstreamErrors, s.Retries, s.Held, s.Panics, s.Conns)
}

func (r *Router) countStatus(status int) {
	c := status / 100
	if c >= len(r.stats.byClass) {
		c = 0 // a backend's odd status, such as 600
	}
	r.stats.byClass[c].Add(1)
}
