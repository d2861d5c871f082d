package router

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Domain routes a custom domain (www.example.com) to a tenant's app, in plain HTTP and, over
// the TLS listener (ServeTLS), with Cert, chosen by the name the client sends in SNI.
type Domain struct {
	Name   string // lower case, no trailing dot
	Tenant string
	App    string
	// Cert is presented for Name on the TLS listener; nil: the name is not served over TLS.
	Cert *tls.Certificate
	// Redirect answers plain HTTP requests for Name with 308 to https://Name/path.
	Redirect bool
}

// domain is one custom domain in the router's immutable domain map.
type domain struct {
	key      []byte // the app's route key, "app.tenant"
	cert     *tls.Certificate
	redirect bool
}

var (
	errMisdirected = &badRequest{421, "misdirected request: Host does not match the TLS server name\n"}
	errNoCert      = errors.New("router: no certificate for this server name")
)

// SetDomains makes ds the router's custom domains, replacing every previous one in one step.
// A request for a domain whose app has no route gets 404, as an unknown host.
func (r *Router) SetDomains(ds []Domain) error {
	m := make(map[string]*domain, len(ds))
	for _, d := range ds {
		name := strings.ToLower(strings.TrimSuffix(d.Name, "."))
		if !validHost([]byte(name)) || strings.HasSuffix(name, r.suffix) {
			return fmt.Errorf("router: domain %q: not a host name outside the apps domain", d.Name)
		}
		m[name] = &domain{key: []byte(routeName(d.Tenant, d.App)), cert: d.Cert, redirect: d.Redirect}
	}
	r.domains.Store(&m)
	return nil
}

// domainOf returns the custom domain named name (lower case, no port), or nil.
func (r *Router) domainOf(name []byte) *domain {
	m := r.domains.Load()
	if m == nil {
		return nil
	}
	return (*m)[string(name)]
}

// getCertificate picks the certificate of the domain the client names in SNI; a name the
// router has none for fails the handshake.
func (r *Router) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if d := r.domainOf([]byte(name)); d != nil && d.cert != nil {
		return d.cert, nil
	}
	return nil, errNoCert
}

// ServeTLS accepts TLS connections on ln until ctx ends, as Serve does plain ones: each
// handshake picks the certificate of the custom domain the client names (SNI), and each
// request on the connection must name the same host.
func (r *Router) ServeTLS(ctx context.Context, ln net.Listener) error {
	cfg := &tls.Config{GetCertificate: r.getCertificate, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	r.tlsLn.Store(&ln)
	return r.serve(ctx, ln, cfg)
}

// TLSAddr returns the address ServeTLS listens on, or nil before it started.
func (r *Router) TLSAddr() net.Addr {
	if ln := r.tlsLn.Load(); ln != nil {
		return (*ln).Addr()
	}
	return nil
}

// handshake completes c's TLS handshake within ReadHeaderTimeout and records the server name
// the client asked for. It reports whether the connection may serve requests.
func (c *conn) handshake(tc *tls.Conn) bool {
	tc.SetDeadline(time.Now().Add(c.r.cfg.ReadHeaderTimeout))
	if err := tc.Handshake(); err != nil {
		return false
	}
	tc.SetDeadline(time.Time{})
	c.sni = append(c.sni[:0], strings.ToLower(strings.TrimSuffix(tc.ConnectionState().ServerName, "."))...)
	return true
}

// routeDomain answers a request whose host is no app.tenant name: one for a custom domain is
// routed to its app (or, in plain HTTP when the domain says so, redirected to HTTPS). On a
// TLS connection the host must be the one the handshake named.
func (c *conn) routeDomain() bool {
	name := hostName(c.req.host)
	if c.tls && !bytes.Equal(name, c.sni) {
		return c.respond(errMisdirected.status, errMisdirected.msg)
	}
	if !c.tls && c.answerChallenge(name) {
		return c.respondChallenge(name)
	}
	d := c.r.domainOf(name)
	if d == nil {
		return c.respond(errUnknownHost.status, errUnknownHost.msg)
	}
	// A peer router passed on what its client sent it, over TLS or answered already.
	if !c.tls && d.redirect && !(c.req.hopped && c.r.isPeer(c.remote)) {
		return c.redirect(name)
	}
	rt := c.r.lookup(d.key)
	if rt == nil {
		return c.respond(errUnknownHost.status, errUnknownHost.msg)
	}
	c.app = rt.stats
	return c.proxy(d.key, rt)
}

// hostName is host without its port and final dot.
func hostName(host []byte) []byte {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && host[len(host)-1] != ']' {
		host = host[:i]
	}
	return bytes.TrimSuffix(host, []byte("."))
}

// redirect answers 308 with the request's path on https://name.
func (c *conn) redirect(name []byte) bool {
	q := &c.req
	loc := append([]byte("https://"), name...)
	star := len(q.target) == 1 && q.target[0] == '*' // OPTIONS *
	if q.slash || star {
		loc = append(loc, '/')
	}
	if !star {
		loc = append(loc, q.target...)
	}
	keep := !q.close && !q.hasBody() && !c.r.closing.Load()
	c.linger = c.linger || q.hasBody()
	bw := c.bw
	bw.WriteString("HTTP/1.1 308 Permanent Redirect\r\nContent-Length: 0\r\nLocation: ")
	bw.Write(loc) // the target holds no control byte or space: parseLine refused those
	if !keep {
		bw.WriteString("\r\nConnection: close")
	}
	bw.WriteString("\r\n\r\n")
	c.status = 308
	c.r.countStatus(308)
	return keep
}
