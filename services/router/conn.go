package router

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	connBufSize     = 4 << 10
	maxResponseHead = 64 << 10
	lingerTime      = 500 * time.Millisecond
)

// conn is one client connection. Its buffers are reused from request to request and, through
// connPool, from connection to connection.
type conn struct {
	r      *Router
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	rw     io.ReadWriter // what br and bw read and write: nc, or its raw system calls
	remote []byte        // the connecting address
	ip     []byte        // the client's address, for the forwarding fields: remote, or a peer router's client
	idle   atomic.Bool   // waiting for a request: shutdown may interrupt the wait
	rd, wd deadline

	head, rhead, out []byte // raw request head, raw response head, upstream request head
	req              request
	resp             response

	// The request being served, for the access log.
	start   time.Time
	status  int
	written int64
	backend string
	linger  bool      // unread request bytes may remain: close gently
	app     *appStats // the routed app's counts, once the request is routed

	switched *upConn // the backend connection of a WebSocket the app accepted

	tls bool   // nc is a TLS server connection (ServeTLS)
	sni []byte // the server name its handshake named, lower case
}

var connPool = sync.Pool{New: func() any {
	return &conn{br: bufio.NewReaderSize(nil, connBufSize), bw: bufio.NewWriterSize(nil, connBufSize)}
}}

func (r *Router) newConn(nc net.Conn) *conn {
	c := connPool.Get().(*conn)
	c.r, c.nc = r, nc
	c.rw = newRawIO(nc)
	c.br.Reset(c.rw)
	c.bw.Reset(c.rw)
	c.rd = deadline{nc: nc, timeout: r.cfg.IdleTimeout}
	c.wd = deadline{nc: nc, timeout: r.cfg.IdleTimeout, write: true}
	c.wd.extend() // writes are bounded from the first
	c.remote = c.remote[:0]
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		// Without a zone: fe80::1%eth0 is no address for the app, and '%' has no place in
		// Forwarded's node syntax.
		c.remote = a.AddrPort().Addr().Unmap().WithZone("").AppendTo(c.remote)
	}
	c.ip = append(c.ip[:0], c.remote...)
	c.linger = false
	_, c.tls = nc.(*tls.Conn)
	c.sni = c.sni[:0]
	return c
}

// serve serves requests on c until the client leaves, a request asks for the connection to
// close, an error makes the stream unusable or the router shuts down. The router has
// tracked it (see track); it ends untracked.
func (c *conn) serve() {
	r := c.r
	defer r.connWG.Done()
	r.stats.conns.Add(1)
	defer func() {
		p := recover()
		if p != nil {
			r.stats.panics.Add(1)
			if r.log != nil {
				r.log.Error("router: panic serving a connection", "remote", string(c.ip), "panic", p, "stack", string(debug.Stack()))
			}
		} else {
			c.closeGently()
		}
		c.nc.Close()
		r.connMu.Lock()
		delete(r.conns, c)
		r.connMu.Unlock()
		r.stats.conns.Add(-1)
		if p == nil {
			c.recycle()
		}
	}()
	if tc, ok := c.nc.(*tls.Conn); ok && !c.handshake(tc) {
		return
	}
	for c.serveOne() {
	}
}

// recycle puts c back in the pool, holding nothing of its last connection.
func (c *conn) recycle() {
	c.r, c.nc, c.rw, c.rd.nc, c.wd.nc, c.app = nil, nil, nil, nil, nil, nil
	c.head, c.rhead, c.out = shrink(c.head), shrink(c.rhead), shrink(c.out)
	c.br.Reset(nil)
	c.bw.Reset(nil)
	connPool.Put(c)
}

// shrink drops a buffer that a large head grew, so that the pool keeps small ones.
func shrink(b []byte) []byte {
	if cap(b) > 8<<10 {
		return nil
	}
	return b[:0]
}

// closeGently flushes what is left to write and, if the client may still be sending, half
// closes and drains for a moment: closing with unread bytes would reset the connection and
// could destroy the response before the client reads it.
func (c *conn) closeGently() {
	if c.bw.Buffered() > 0 {
		c.wd.extend()
		if c.bw.Flush() != nil {
			return
		}
	}
	if !c.linger {
		return
	}
	if tc, ok := c.nc.(*net.TCPConn); ok {
		tc.CloseWrite()
		tc.SetReadDeadline(time.Now().Add(lingerTime))
		io.CopyN(io.Discard, tc, 256<<10)
	}
}

// serveOne reads and answers one request; it reports whether another may follow.
func (c *conn) serveOne() bool {
	r := c.r
	if c.br.Buffered() == 0 {
		now := time.Now()
		if c.bw.Buffered() > 0 { // pipelined answers wait until the client has to wait
			c.wd.extendAt(now)
			if awaits(c.rw) {
				c.rd.set(now.Add(min(awaitNext, c.rd.timeout))) // see flushAwait
			}
			if flushAwait(c.bw, c.rw) != nil {
				return false
			}
			now = time.Now()
		}
		c.rd.extendAt(now)
		c.idle.Store(true)
		if r.closing.Load() {
			c.idle.Store(false)
			return false
		}
		_, err := c.br.Peek(1)
		c.idle.Store(false)
		if err != nil {
			return false
		}
	}
	c.start = time.Now()
	c.status, c.written, c.backend, c.app = 0, 0, "", nil
	c.req = request{fields: c.req.fields[:0], hop: c.req.hop[:0], minor: 1, length: -1}
	keep := c.handle()
	if c.status != 0 {
		if c.app != nil {
			c.app.observe(c.status, time.Since(c.start))
		}
		c.logRequest()
	}
	return keep
}

func (c *conn) handle() bool {
	r := c.r
	var err error
	c.head, err = readHead(c.br, c.head, r.cfg.MaxHeaderBytes, &c.rd, c.start.Add(r.cfg.ReadHeaderTimeout))
	switch {
	case err == nil:
	case err == errHeadTooLarge:
		return c.fail(errTooLarge)
	case err == errMalformed:
		return c.fail(errBadRequest)
	case isTimeout(err):
		return c.fail(errHeadTimeout)
	default:
		return false // the client left
	}
	if bad := c.req.parse(c.head); bad != nil {
		return c.fail(bad)
	}
	c.ip = append(c.ip[:0], c.remote...)
	if c.req.hopped && len(c.req.realIP) > 0 && r.isPeer(c.remote) {
		// A peer router passed it on: the client is the one that router saw.
		if a, err := netip.ParseAddr(string(c.req.realIP)); err == nil {
			c.ip = a.Unmap().WithZone("").AppendTo(c.ip[:0])
		}
	}
	if c.tls {
		return c.routeDomain()
	}
	key := routeKey(c.req.host, r.suffix)
	if key == nil {
		return c.routeDomain()
	}
	rt := r.lookup(key)
	if rt == nil {
		return c.respond(errUnknownHost.status, errUnknownHost.msg)
	}
	c.app = rt.stats
	return c.proxy(key, rt)
}

// fail answers a request that cannot be framed and reports that the connection must close.
func (c *conn) fail(bad *badRequest) bool {
	c.linger = true
	c.writeError(bad.status, bad.msg, true)
	return false
}

// respond answers a well-framed request with an error of the router's own. The connection
// stays open unless the request had a body, which the router did not read.
func (c *conn) respond(status int, msg string) bool {
	keep := !c.req.close && !c.req.hasBody() && !c.r.closing.Load()
	c.linger = c.linger || c.req.hasBody()
	c.writeError(status, msg, !keep)
	return keep
}

func (c *conn) writeError(status int, msg string, close bool) {
	bw := c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(reason(status))
	bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(msg)), 10))
	if status == 503 { // no instance could take it now; one may soon
		bw.WriteString("\r\nRetry-After: 1")
	}
	switch {
	case close:
		bw.WriteString("\r\nConnection: close")
	case c.req.minor == 0:
		bw.WriteString("\r\nConnection: keep-alive")
	}
	bw.WriteString("\r\n\r\n")
	if !c.req.isHead() {
		bw.WriteString(msg)
		c.written = int64(len(msg))
	}
	c.status = status
	c.r.countStatus(status)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// logRequest writes the access log line, if the logger wants Info.
func (c *conn) logRequest() {
	l := c.r.log
	if l == nil || !l.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	l.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("host", string(c.req.host)),
		slog.String("method", string(c.req.method)),
		slog.String("path", string(c.req.target)),
		slog.Int("status", c.status),
		slog.Int64("bytes", c.written),
		slog.Duration("duration", time.Since(c.start)),
		slog.String("backend", c.backend))
}

// awaitNext bounds how long an answer's flush waits for the client's next request before it
// reads as usual (see flushAwait): a client that sent it before the answer was out waits
// that long for its answer.
const awaitNext = 250 * time.Millisecond
