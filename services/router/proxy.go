package router

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"sync"
	"time"
)

// outcome is how one attempt at a backend ended.
type outcome uint8

const (
	relayed outcome = iota // the backend's response went to the client, whole or not
	again                  // nothing reached the client or the backend; the request may be sent again
	refused                // as again, and the backend could not even be dialed: it is not there now
	failed                 // nothing reached the client; answer with the error
)

// proxy sends the request to a backend of rt, at most twice in a row, and relays the
// response. While no backend can take it, it is held for the app's set to change and sent
// again (see hold). It reports whether the client connection may serve another request.
func (c *conn) proxy(key []byte, rt *route) bool {
	c.buildHead()
	var skip *upstream
	var bad *badRequest
	held, absent := false, false // absent: the last try found no backend there to dial
	for attempt := 0; ; attempt++ {
		var u *upstream
		if attempt < 2 {
			u, rt = c.pick(key, rt, skip)
		}
		if u == nil {
			// None there to dial, or none healthy: wait for the set to change, or for one
			// to come back. Both tries failed otherwise (a backend dying as it took them):
			// wait a little for the set to change, which it does when an instance dies.
			if rt == nil || !c.hold(key, &rt, attempt == 0 || absent) {
				break
			}
			if !held {
				held = true
				c.r.stats.held.Add(1)
			}
			attempt, skip = -1, nil
			continue
		}
		if attempt > 0 && !held {
			c.r.stats.retries.Add(1)
		}
		keep, out, why := c.exchange(u)
		switch out {
		case relayed:
			if c.switched != nil {
				return c.tunnel()
			}
			return keep
		case failed:
			if why == nil { // the client went away while sending its body
				return false
			}
			return c.respond(why.status, why.msg)
		}
		bad, skip, absent = why, u, out == refused
	}
	switch {
	case rt == nil: // removed while this request was being routed
		return c.respond(errUnknownHost.status, errUnknownHost.msg)
	case bad != nil && !held:
		return c.respond(bad.status, bad.msg)
	}
	return c.respond(503, rt.noneMsg)
}

// holdPoll is how often a held request looks again at a set that has not changed: its
// backends may come back (a failed one is tried last for a second, not dropped).
const holdPoll = 25 * time.Millisecond

// dyingHold bounds the wait, after two tries that reached a backend and got nothing, for the
// set to change: an instance that died as it took them is out of it within milliseconds; a
// backend that hangs up on every request is not, and gets its 502 soon.
const dyingHold = 500 * time.Millisecond

// hold waits for the app's set to change, while the request has not been held Config.Hold
// since it arrived, and reads the route again (nil: the app is gone). With poll it looks
// again every holdPoll whatever happens; without, it gives up unless the set changes within
// dyingHold. It reports whether to try again.
func (c *conn) hold(key []byte, rt **route, poll bool) bool {
	left := c.r.cfg.Hold - time.Since(c.start)
	if left <= 0 || c.r.closing.Load() {
		return false
	}
	wait := min(left, holdPoll)
	if !poll {
		wait = min(left, dyingHold)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-(*rt).gone:
	case <-t.C:
		if !poll {
			return false
		}
	}
	*rt = c.r.lookup(key)
	return *rt != nil
}

// pick chooses a backend of rt and counts the request in flight there. A backend retired
// between the table lookup and the count is given up and the table read again: SetRoute
// stores the table before it retires, so a backend in no set whose Inflight was seen at 0
// gets nothing new.
func (c *conn) pick(key []byte, rt *route, skip *upstream) (*upstream, *route) {
	now := c.start.UnixNano()
	for range 8 {
		u := rt.pick(skip, now, c.req.hopped)
		if u == nil {
			return nil, rt
		}
		u.inflight.Add(1)
		if !u.retired.Load() {
			return u, rt
		}
		u.done()
		if rt = c.r.lookup(key); rt == nil {
			return nil, nil
		}
	}
	return nil, rt
}

// buildHead writes the upstream request head to c.out: the request line in origin form,
// Host, the forwarding fields, the end-to-end fields and the body's framing. The forwarding
// fields are the router's alone: the client's (any case, any number, any spelling classify
// knows) were dropped, never appended to, so an app reading X-Forwarded-For, X-Real-IP or
// Forwarded learns the address that connected to the router and nothing a client claims.
func (c *conn) buildHead() {
	q := &c.req
	b := append(c.out[:0], q.method...)
	b = append(b, ' ')
	if q.slash {
		b = append(b, '/')
	}
	b = append(b, q.target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, q.host...)
	b = append(b, "\r\nX-Forwarded-For: "...)
	b = append(b, c.ip...)
	b = append(b, "\r\nX-Real-IP: "...)
	b = append(b, c.ip...)
	if c.tls {
		b = append(b, "\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: "...)
	} else {
		b = append(b, "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: "...)
	}
	b = append(b, q.host...)
	b = append(b, "\r\nForwarded: for="...)
	b = appendNode(b, c.ip)
	if c.tls {
		b = append(b, ";proto=https;host=\""...)
	} else {
		b = append(b, ";proto=http;host=\""...)
	}
	b = append(b, q.host...) // validHostPort admits no '"' or '\\'
	b = append(b, "\"\r\nEnjin-Hop: 1\r\n"...)
	for i := range q.fields {
		if f := &q.fields[i]; forwarded(f, q.hop, false) {
			b = append(b, f.name...)
			b = append(b, ": "...)
			b = append(b, f.value...)
			b = append(b, "\r\n"...)
		}
	}
	if q.upgrade {
		b = append(b, "Connection: Upgrade\r\nUpgrade: websocket\r\n"...)
	}
	switch {
	case q.chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case q.length >= 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, q.length, 10)
		b = append(b, "\r\n"...)
	}
	c.out = append(b, "\r\n"...)
}

// bodyResult is how sending a request body ended: client says reading the client failed,
// aborted that the router had stopped the sender by then.
type bodyResult struct {
	err     error
	client  bool
	aborted bool
}

// exchange sends the request to u, which pick counted in flight, and relays the response.
// keep says whether the client connection may serve another request.
func (c *conn) exchange(u *upstream) (keep bool, out outcome, bad *badRequest) {
	defer u.done()
	q, r := &c.req, c.r
	now := c.start
	uc, err := u.get(now)
	if err != nil {
		r.stats.upErrors.Add(1)
		u.failedAt.Store(now.UnixNano())
		return false, refused, upstreamError(err)
	}
	c.backend = u.id
	uc.rd.extendAt(now)
	uc.wd.extendAt(now)
	write := writeAwait // nothing can be read before the request is sent: wait, do not try
	if q.hasBody() {
		write = plainWrite
	}
	if _, err := write(uc.w, c.out); err != nil {
		uc.nc.Close()
		r.stats.upErrors.Add(1)
		c.upstreamFailed(u, uc.reused)
		return false, again, upstreamError(err) // nothing was taken from the client yet
	}
	var body chan bodyResult
	if q.hasBody() {
		if q.expect && q.minor == 1 {
			c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			c.wd.extend()
			if c.bw.Flush() != nil {
				uc.nc.Close()
				return false, failed, nil
			}
		}
		body = make(chan bodyResult, 1)
		go c.sendBody(uc, body) // ends when the body is sent or either side failed (then uc is closed)
	}
	p := &c.resp
	for first := true; ; first = false {
		c.rhead, err = readHead(uc.br, c.rhead, maxResponseHead, nil, time.Time{})
		if err == nil && !p.parse(c.rhead, q.isHead(), q.upgrade) {
			err = errMalformed
		}
		if err != nil {
			fresh := first && len(c.rhead) == 0
			uc.nc.Close()
			if body != nil {
				if res := c.stopBody(body, uc); res.client && !res.aborted {
					return false, failed, clientBodyError(res.err)
				}
			}
			r.stats.upErrors.Add(1)
			c.upstreamFailed(u, fresh && uc.reused)
			if fresh && q.replayable() && !isTimeout(err) {
				return false, again, upstreamError(err)
			}
			return false, failed, upstreamError(err)
		}
		if !p.interim {
			break
		}
	}
	if p.status == 101 { // the app took the WebSocket: a tunnel, which proxy runs
		c.switched = uc
		return false, relayed, nil
	}
	return c.relayResponse(u, uc, body), relayed, nil
}

// upstreamFailed notes a failure of u. A kept-alive connection that turns out closed (stale)
// is no failure of the backend, but its other idle connections are likely closed too (it
// restarted): they are dropped so that the retry and later requests dial afresh.
func (c *conn) upstreamFailed(u *upstream, stale bool) {
	if stale {
		u.dropIdle()
		return
	}
	u.failedAt.Store(time.Now().UnixNano())
}

// writeStatusAndFields writes the response's status line and the fields it passes on to the
// client (not its framing, which the caller writes).
func (c *conn) writeStatusAndFields() {
	p, bw := &c.resp, c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.Write(p.line)
	bw.WriteString("\r\n")
	for i := range p.fields {
		if f := &p.fields[i]; forwarded(f, p.hop, true) {
			bw.Write(f.name)
			bw.WriteString(": ")
			bw.Write(f.value)
			bw.WriteString("\r\n")
		}
	}
}

// relayResponse writes the response head to the client and streams its body, then waits
// for the request body's sender, and keeps uc for another request if it can.
func (c *conn) relayResponse(u *upstream, uc *upConn, body chan bodyResult) (keep bool) {
	q, p, r, bw := &c.req, &c.resp, c.r, c.bw
	keep = !q.close && !r.closing.Load()
	c.writeStatusAndFields()
	chunk := false
	switch {
	case p.mode == bodyLength || p.mode == bodyNone && p.length >= 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), p.length, 10))
		bw.WriteString("\r\n")
	case p.mode == bodyNone:
	case q.minor == 1:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		chunk = true
	default:
		keep = false // an HTTP/1.0 client reads to the end of the connection
	}
	switch {
	case !keep:
		bw.WriteString("Connection: close\r\n")
	case q.minor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
	c.status = p.status
	r.countStatus(p.status)

	src := bodyReader{br: uc.br, mode: p.mode, n: max(p.length, 0)}
	n, err, upFailed := relay(bw, &c.wd, &src, &uc.rd, chunk)
	c.written = n
	if err == nil && chunk {
		bw.WriteString("0\r\n\r\n")
	}
	reuse := err == nil && !p.close
	if upFailed {
		r.stats.upErrors.Add(1)
	}
	if body != nil {
		if res, ok := c.waitBody(body, uc); !ok || res.err != nil {
			reuse, keep = false, false
		}
	}
	if err != nil {
		keep = false
	}
	if reuse {
		u.put(uc, c.start)
	} else {
		uc.nc.Close()
	}
	return keep
}

// waitBody waits a moment for the request body's sender once the response is complete; a
// backend that answered without reading the whole body gets its connection closed.
func (c *conn) waitBody(body chan bodyResult, uc *upConn) (bodyResult, bool) {
	select {
	case res := <-body:
		return res, true
	default:
	}
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case res := <-body:
		return res, true
	case <-t.C:
		c.linger = true
		return c.stopBody(body, uc), false
	}
}

// stopBody ends the request body's sender, waking it from waits on the client or on uc,
// which it closes, and returns how the sender ended.
func (c *conn) stopBody(body chan bodyResult, uc *upConn) bodyResult {
	select {
	case res := <-body:
		return res
	default:
	}
	c.rd.abort()
	uc.nc.Close()
	return <-body
}

var bodyWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}

// sendBody streams the request body from the client to uc. On failure it closes uc, which
// ends the wait for the response.
func (c *conn) sendBody(uc *upConn, done chan<- bodyResult) {
	res := bodyResult{}
	defer func() {
		if p := recover(); p != nil {
			c.r.stats.panics.Add(1)
			res = bodyResult{err: errors.New("router: panic sending a request body")}
		}
		if res.err != nil {
			res.aborted = c.rd.stop.Load()
			uc.nc.Close()
		}
		done <- res
	}()
	w := bodyWriters.Get().(*bufio.Writer)
	w.Reset(uc.w)
	defer func() { w.Reset(nil); bodyWriters.Put(w) }()
	src := bodyReader{br: c.br, mode: bodyLength, n: c.req.length}
	if c.req.chunked {
		src.mode, src.n = bodyChunked, 0
	}
	_, res.err, res.client = relay(w, &uc.wd, &src, &c.rd, c.req.chunked)
	if res.err == nil && c.req.chunked {
		w.WriteString("0\r\n\r\n")
	}
	if res.err == nil {
		uc.wd.extend()
		res.err = w.Flush()
	}
}

// appendNode appends ip as RFC 7239 writes a node: IPv4 bare, IPv6 quoted in brackets,
// "unknown" if the listener gave no IP address.
func appendNode(b, ip []byte) []byte {
	switch {
	case len(ip) == 0:
		return append(b, "unknown"...)
	case bytes.IndexByte(ip, ':') < 0:
		return append(b, ip...)
	}
	b = append(b, `"[`...)
	b = append(b, ip...)
	return append(b, `]"`...)
}

func upstreamError(err error) *badRequest {
	if isTimeout(err) {
		return errUpstreamTime
	}
	return errUpstream
}

// clientBodyError maps a failure reading the client's body: a malformed chunk is the
// client's mistake (400); anything else means it left (nil: nothing to answer).
func clientBodyError(err error) *badRequest {
	if errors.Is(err, errChunk) {
		return errBadChunk
	}
	return nil
}
