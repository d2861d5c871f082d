package router

import (
	"bytes"
)

// request is a client request's parsed head. Its slices point into the connection's raw
// head and are valid until the next request is read.
type request struct {
	method, target []byte
	slash          bool   // target came from an absolute URI without a path: send "/" first
	host           []byte // from the Host field or the absolute URI, lower case, port kept
	minor          int    // HTTP/1.minor
	fields         []field
	hop            [][]byte // field names the Connection field declared hop-by-hop
	length         int64    // Content-Length, or -1
	chunked        bool
	close          bool   // the connection ends after this request
	keepAlive      bool   // an HTTP/1.0 client asked to keep the connection
	expect         bool   // Expect: 100-continue
	upgrade        bool   // a WebSocket handshake: the connection becomes a tunnel if the app agrees
	hopped         bool   // Enjin-Hop: it came through a router already, and goes to no peer router
	realIP         []byte // X-Real-IP, if one came: what a peer router says the client's address is
}

// badRequest is why a request head was refused: a status and a short body.
type badRequest struct {
	status int
	msg    string
}

var (
	errBadLine      = &badRequest{400, "malformed request line\n"}
	errBadVersion   = &badRequest{400, "unsupported HTTP version\n"}
	errBadTarget    = &badRequest{400, "malformed request target\n"}
	errBadField     = &badRequest{400, "malformed header field\n"}
	errBadHost      = &badRequest{400, "missing, repeated or malformed Host\n"}
	errBadLength    = &badRequest{400, "malformed or repeated Content-Length\n"}
	errBadCoding    = &badRequest{400, "unsupported Transfer-Encoding\n"}
	errBadFraming   = &badRequest{400, "Content-Length with Transfer-Encoding\n"}
	errBadExpect    = &badRequest{417, "unsupported Expect\n"}
	errBadMethod    = &badRequest{405, "method not allowed\n"}
	errTooLarge     = &badRequest{431, "request header fields too large\n"}
	errHeadTimeout  = &badRequest{408, "request head timeout\n"}
	errBadRequest   = &badRequest{400, "malformed request\n"}
	errUnknownHost  = &badRequest{404, "unknown host\n"}
	errBadChunk     = &badRequest{400, "malformed chunked body\n"}
	errUpstream     = &badRequest{502, "upstream failed\n"}
	errUpstreamTime = &badRequest{504, "upstream timed out\n"}
)

// parse parses raw, a request head as readHead returns it, into q.
func (q *request) parse(raw []byte) *badRequest {
	*q = request{fields: q.fields[:0], hop: q.hop[:0], length: -1}
	line, rest := cutLine(raw)
	if bad := q.parseLine(line); bad != nil {
		return bad
	}
	var host []byte
	haveHost, haveTE, websocket := false, false, false
	for {
		line, rest = cutLine(rest)
		if len(line) == 0 {
			break
		}
		f, ok := parseField(line)
		if !ok {
			return errBadField
		}
		switch f.kind {
		case kHost:
			if haveHost {
				return errBadHost
			}
			host, haveHost = f.value, true
		case kContentLength:
			n, ok := parseLength(f.value)
			if !ok || q.length >= 0 {
				return errBadLength
			}
			q.length = n
		case kTransferEncoding:
			if haveTE || !eqFold(f.value, "chunked") {
				return errBadCoding
			}
			haveTE, q.chunked = true, true
		case kConnection:
			q.hop = connTokens(f.value, q.hop, &q.close, &q.keepAlive)
		case kExpect:
			if !eqFold(f.value, "100-continue") {
				return errBadExpect
			}
			q.expect = true
		case kHop:
			websocket = websocket || eqFold(f.name, "upgrade") && eqFold(f.value, "websocket")
		case kEnjinHop:
			q.hopped = true
		case kForwarding:
			if eqFoldName(f.name, "x-real-ip") {
				q.realIP = f.value
			}
		}
		q.fields = append(q.fields, f)
	}
	switch {
	case q.chunked && q.length >= 0:
		return errBadFraming
	case q.chunked && q.minor == 0:
		return errBadCoding
	case !haveHost && q.minor == 1:
		return errBadHost
	}
	if q.host == nil { // origin form: the Host field names the app
		q.host = host
	}
	if !validHostPort(q.host) {
		return errBadHost
	}
	lower(q.host)
	if q.minor == 0 {
		q.close = q.close || !q.keepAlive
	}
	// Only WebSocket's handshake switches protocols through the router (RFC 6455: GET,
	// HTTP/1.1, no body); any other Upgrade is dropped as the hop-by-hop field it is.
	q.upgrade = websocket && q.minor == 1 && !q.hasBody() && string(q.method) == "GET" && listed([]byte("upgrade"), q.hop)
	return nil
}

// parseLine parses "METHOD SP target SP HTTP/1.x". Anything else, including HTTP/0.9's
// versionless line and doubled spaces, is refused.
func (q *request) parseLine(line []byte) *badRequest {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		return errBadLine
	}
	q.method, line = line[:sp], line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return errBadLine
	}
	q.target, line = line[:sp], line[sp+1:]
	switch string(line) {
	case "HTTP/1.1":
		q.minor = 1
	case "HTTP/1.0":
		q.minor = 0
	default:
		return errBadVersion
	}
	if string(q.method) == "CONNECT" {
		return errBadMethod
	}
	for i, c := range q.target {
		if c <= ' ' || c == 0x7f || c == '#' { // a fragment never belongs in a request target
			return errBadTarget
		}
		// A percent must start an escape: backends (and net/http) refuse "%zz", so the router
		// does too rather than forward what the app would read differently.
		if c == '%' && (i+2 >= len(q.target) || !isHex(q.target[i+1]) || !isHex(q.target[i+2])) {
			return errBadTarget
		}
	}
	switch {
	case q.target[0] == '/':
	case len(q.target) == 1 && q.target[0] == '*' && string(q.method) == "OPTIONS":
	default:
		return q.absoluteTarget()
	}
	return nil
}

// absoluteTarget splits an absolute-form target (http://host/path): the host it names
// replaces the Host field (RFC 9112 §3.2.2) and the path is sent upstream.
func (q *request) absoluteTarget() *badRequest {
	t := q.target
	i := bytes.Index(t, []byte("://"))
	if i < 0 || !eqFold(t[:i], "http") && !eqFold(t[:i], "https") {
		return errBadTarget
	}
	t = t[i+3:]
	end := len(t)
	if j := bytes.IndexAny(t, "/?#"); j >= 0 {
		end = j
	}
	q.host, q.target = t[:end], t[end:]
	if len(q.target) == 0 || q.target[0] != '/' {
		q.slash = true
	}
	if len(q.host) == 0 || bytes.IndexByte(q.host, '@') >= 0 {
		return errBadTarget
	}
	return nil
}

func (q *request) hasBody() bool { return q.chunked || q.length > 0 }

// replayable reports whether q may be sent again after an upstream failed before answering.
func (q *request) replayable() bool {
	if q.hasBody() {
		return false
	}
	switch string(q.method) {
	case "GET", "HEAD", "OPTIONS":
		return true
	}
	return false
}

func (q *request) isHead() bool { return string(q.method) == "HEAD" }

// routeKey returns "app.tenant" if host (lower case) is app.tenant+suffix, else nil.
func routeKey(host []byte, suffix string) []byte {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && host[len(host)-1] != ']' {
		host = host[:i]
	}
	if n := len(host); n > 0 && host[n-1] == '.' {
		host = host[:n-1]
	}
	if len(host) <= len(suffix) || string(host[len(host)-len(suffix):]) != suffix {
		return nil
	}
	return host[:len(host)-len(suffix)]
}

// validHostPort checks a Host value: a host name, IPv4 address or bracketed IPv6 address,
// then an optional port of up to 5 digits.
func validHostPort(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	if h[0] == '[' {
		end := bytes.IndexByte(h, ']')
		if end < 2 {
			return false
		}
		for _, c := range h[1:end] {
			if !(c == ':' || c == '.' || '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f') {
				return false
			}
		}
		return validPort(h[end+1:])
	}
	if i := bytes.IndexByte(h, ':'); i >= 0 {
		if !validPort(h[i:]) {
			return false
		}
		h = h[:i]
	}
	return validHost(h)
}

// validPort checks "" or ":digits" with 1 to 5 digits.
func validPort(p []byte) bool {
	if len(p) == 0 {
		return true
	}
	if p[0] != ':' || len(p) < 2 || len(p) > 6 {
		return false
	}
	for _, c := range p[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validHost checks a host name's bytes: letters, digits, '-', '_' and '.', no empty label
// but for a final dot.
func validHost(h []byte) bool {
	if len(h) == 0 || len(h) > 255 || h[0] == '.' {
		return false
	}
	for i, c := range h {
		switch {
		case 'a' <= c|0x20 && c|0x20 <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '.':
			if i > 0 && h[i-1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func lower(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
