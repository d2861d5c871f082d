// Package dns is ring 1's authoritative DNS server for tenants' apps. It answers for one zone,
// the apps domain (for example apps.enjin.test), over UDP and TCP:
//
//   - <app>.<tenant>.<apps domain>, for an app added with SetApp: A is the router's IPv4
//     address, AAAA its IPv6 address (no answer when none is configured); any other type is
//     an empty answer (NODATA) with the zone's SOA in the authority section.
//   - <tenant>.<apps domain>, while the tenant has an app, is an empty non-terminal: NODATA,
//     never NXDOMAIN, so resolvers that minimise query names still find the apps below it.
//   - The apex answers SOA and NS. The single name server is ns.<apps domain>, which answers
//     like an app (the router's addresses): the DNS server is expected to be reachable at the
//     router's address, which keeps the zone self-contained with no out-of-zone glue.
//   - Every other name in the zone, deeper names included, is NXDOMAIN with the SOA.
//   - Names outside the zone are REFUSED: this is not a resolver.
//
// Names match case-insensitively and answers repeat the question's spelling. Authoritative
// answers carry the AA bit; EDNS(0) is answered with an OPT record of our own (version 0,
// DO bit copied, 1232-byte payload) and UDP answers are truncated with TC to what the client
// can receive. Requests with zero or several questions are FORMERR, opcodes other than QUERY
// are NOTIMP, classes other than IN and zone transfers are REFUSED, and responses are ignored.
// No input makes the server panic.
//
// Lookups are lock-free: the set of apps is an immutable snapshot behind an atomic pointer,
// replaced copy-on-write by SetApp and RemoveApp, whose changes are visible to the next query.
// The SOA serial advances with every change. Only ring 1 imports dns.
package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"enjin"
)

// DefaultAddr is where the server listens when Config.Addr is empty.
const DefaultAddr = "127.0.0.1:5353"

// DefaultTTL is the TTL of every record when Config.TTL is zero. It is short because apps
// come and go and the router's address may move.
const DefaultTTL = 5

// Config configures a Server. AppsDomain and RouterV4 are required.
type Config struct {
	// Addr is the host:port served on both UDP and TCP; DefaultAddr if empty. With port 0
	// the TCP listener takes the port the UDP listener got when it is free.
	Addr string
	// AppsDomain is the zone, case-insensitive, with or without the trailing dot.
	AppsDomain string
	// RouterV4 is the IPv4 address answered for every app and for ns.<AppsDomain>.
	RouterV4 net.IP
	// RouterV6, if set, is the IPv6 address answered for AAAA queries.
	RouterV6 net.IP
	// TTL of every record, also the SOA minimum (negative caching); DefaultTTL if zero.
	TTL uint32
	// Logger receives app changes and serving errors; nil discards them.
	Logger *slog.Logger
}

// Server is an authoritative DNS server for the apps domain. It is a dns.Handler, so it can
// also be mounted on another miekg/dns server.
type Server struct {
	origin string // canonical zone name: lowercase, trailing dot
	v4, v6 net.IP // v6 is nil when unset
	ttl    uint32
	log    *slog.Logger

	zone atomic.Pointer[zone] // read by every query, never modified in place
	mu   sync.Mutex           // serialises writers of zone

	running  atomic.Bool
	ready    chan struct{} // closed once both listeners are open
	addr     string
	udp, tcp net.Addr // set before ready is closed
}

// New validates cfg, reporting every problem together, and returns a Server that is not yet
// serving.
func New(cfg Config) (*Server, error) {
	var errs []error
	origin := dns.CanonicalName(strings.TrimSpace(cfg.AppsDomain))
	if _, ok := dns.IsDomainName(origin); !ok || origin == "." {
		errs = append(errs, fmt.Errorf("apps domain %q is not a domain name", cfg.AppsDomain))
	}
	v4 := cfg.RouterV4.To4()
	if v4 == nil {
		errs = append(errs, fmt.Errorf("router IPv4 address %q is not an IPv4 address", cfg.RouterV4))
	}
	var v6 net.IP
	if cfg.RouterV6 != nil {
		if v6 = cfg.RouterV6.To16(); v6 == nil || cfg.RouterV6.To4() != nil {
			errs = append(errs, fmt.Errorf("router IPv6 address %q is not an IPv6 address", cfg.RouterV6))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("dns: config: %w", errors.Join(errs...))
	}
	s := &Server{
		origin: origin,
		v4:     v4,
		v6:     v6,
		ttl:    cfg.TTL,
		log:    cfg.Logger,
		ready:  make(chan struct{}),
		addr:   cfg.Addr,
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.addr == "" {
		s.addr = DefaultAddr
	}
	s.zone.Store(&zone{serial: uint32(time.Now().Unix())})
	return s, nil
}

// SetApp makes <app>.<tenant>.<apps domain> exist from the next query on. Tenant and app
// must be slugs or UUIDs (enjin.IsSlug, enjin.IsUUID), in any case; other names are logged
// and ignored, since no query could reach them safely.
func (s *Server) SetApp(tenant, app string) {
	tenant, app, ok := s.names(tenant, app)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if next := s.zone.Load().with(tenant, app); next != nil {
		s.zone.Store(next)
		s.log.Info("dns: app added", "tenant", tenant, "app", app)
	}
}

// RemoveApp makes <app>.<tenant>.<apps domain> NXDOMAIN from the next query on. Removing an
// app that does not exist does nothing.
func (s *Server) RemoveApp(tenant, app string) {
	tenant, app, ok := s.names(tenant, app)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if next := s.zone.Load().without(tenant, app); next != nil {
		s.zone.Store(next)
		s.log.Info("dns: app removed", "tenant", tenant, "app", app)
	}
}

// names lowercases tenant and app and reports whether both are usable as DNS labels.
func (s *Server) names(tenant, app string) (string, string, bool) {
	tenant, app = strings.ToLower(tenant), strings.ToLower(app)
	for _, n := range []string{tenant, app} {
		if !enjin.IsSlug(n) && !enjin.IsUUID(n) {
			s.log.Warn("dns: app name ignored: not a slug or UUID", "tenant", tenant, "app", app)
			return "", "", false
		}
	}
	return tenant, app, true
}

// Ready is closed once Run has opened both listeners; Addr is meaningful from then on.
// It is never closed if Run fails to listen.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the UDP and TCP addresses being served, or nils before Ready is closed.
func (s *Server) Addr() (udp, tcp net.Addr) {
	select {
	case <-s.ready:
		return s.udp, s.tcp
	default:
		return nil, nil
	}
}
