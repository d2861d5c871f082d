package router

import (
	"bufio"
	"bytes"
	"errors"
	"time"
)

var (
	errHeadTooLarge = errors.New("head too large")
	errMalformed    = errors.New("malformed message")
)

// maxLeadingCRLF is how many empty lines may precede a request line (RFC 9112 §2.2 asks
// servers to skip at least one, sent by some clients after a POST body).
const maxLeadingCRLF = 4

// readHead appends to raw[:0] the head of a message (start line, fields and the empty line)
// from br, leaving br at the first byte after it. Every line must end in CRLF. It fails with
// errHeadTooLarge past limit bytes. Before its first blocking read, if d is not nil, it moves
// d to at: a head that arrived whole costs no deadline change.
func readHead(br *bufio.Reader, raw []byte, limit int, d *deadline, at time.Time) ([]byte, error) {
	raw = raw[:0]
	lineStart, empties := 0, 0
	for {
		if br.Buffered() == 0 {
			if d != nil {
				d.set(at)
				d = nil
			}
			if _, err := br.Peek(1); err != nil {
				return raw, err
			}
		}
		buf, _ := br.Peek(br.Buffered())
		off := 0
		for {
			i := bytes.IndexByte(buf[off:], '\n')
			if i < 0 {
				break
			}
			end := off + i + 1
			raw = append(raw, buf[off:end]...)
			off = end
			n := len(raw) - lineStart
			if n < 2 || raw[len(raw)-2] != '\r' {
				br.Discard(off)
				return raw, errMalformed // bare LF
			}
			switch {
			case n > 2:
				lineStart = len(raw)
			case lineStart > 0:
				br.Discard(off)
				return raw, nil
			case empties < maxLeadingCRLF:
				empties++
				raw = raw[:0]
			default:
				br.Discard(off)
				return raw, errMalformed
			}
			if len(raw) > limit {
				br.Discard(off)
				return raw, errHeadTooLarge
			}
		}
		raw = append(raw, buf[off:]...)
		br.Discard(len(buf))
		if len(raw) > limit {
			return raw, errHeadTooLarge
		}
	}
}

// cutLine splits b after its first CRLF; readHead made sure every line has one.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 {
		return nil, nil
	}
	return b[:i-1], b[i+1:]
}

// Field kinds that the proxy treats specially, in requests and responses.
const (
	kOther uint8 = iota
	kHost
	kContentLength
	kTransferEncoding
	kConnection
	kExpect
	kHop // hop-by-hop fields dropped in both directions
	// kForwarding marks a client's claims about the connection (X-Forwarded-*, X-Real-IP,
	// Forwarded and kin): only the router knows the connection, so it drops every one of
	// them and writes its own.
	kForwarding
	// kEnjinHop is Enjin-Hop, which every request the router sends on carries: one that
	// arrives with it came through a router (or claims to) and goes to no other router.
	kEnjinHop
)

// field is one header field; name and value point into the message's raw head.
type field struct {
	name, value []byte
	kind        uint8
}

// classify returns name's kind. name is a token.
func classify(name []byte) uint8 {
	switch len(name) {
	case 2:
		if eqFold(name, "te") {
			return kHop
		}
	case 4:
		if eqFold(name, "host") {
			return kHost
		}
	case 6:
		if eqFold(name, "expect") {
			return kExpect
		}
	case 7:
		if eqFold(name, "trailer") || eqFold(name, "upgrade") {
			return kHop
		}
	case 9:
		if eqFold(name, "enjin-hop") {
			return kEnjinHop
		}
	case 10:
		if eqFold(name, "connection") {
			return kConnection
		}
		if eqFold(name, "keep-alive") {
			return kHop
		}
	case 14:
		if eqFold(name, "content-length") {
			return kContentLength
		}
	case 16:
		if eqFold(name, "proxy-connection") {
			return kHop
		}
	case 17:
		if eqFold(name, "transfer-encoding") {
			return kTransferEncoding
		}
	case 18:
		if eqFold(name, "proxy-authenticate") {
			return kHop
		}
	case 19:
		if eqFold(name, "proxy-authorization") {
			return kHop
		}
	}
	if forwarding(name) {
		return kForwarding
	}
	return kOther
}

// forwarding reports whether name claims something about the client's connection: any
// X-Forwarded-* (For, Proto, Host, Port, Ssl, Scheme…), X-Real-IP, Forwarded, and the
// other spellings of the client's address or scheme that frameworks trust. An underscore
// counts as a hyphen, because CGI-style backends (PHP, WSGI, Rack) read X_Forwarded_For
// and X-Forwarded-For as the same HTTP_X_FORWARDED_FOR.
func forwarding(name []byte) bool {
	const prefix = "x-forwarded-"
	switch {
	case len(name) >= len(prefix):
		if eqFoldName(name[:len(prefix)], prefix) {
			return true
		}
	case len(name) < 9:
		return false
	}
	for _, n := range forwardingNames {
		if eqFoldName(name, n) {
			return true
		}
	}
	return false
}

// forwardingNames are the forwarding fields without the X-Forwarded- prefix.
var forwardingNames = [...]string{"forwarded", "x-real-ip", "x-client-ip", "x-url-scheme", "true-client-ip",
	"front-end-https", "x-cluster-client-ip"}

// parseField checks one header line and splits it. It refuses obs-fold (a line starting
// with white space), white space before the colon, and control bytes in the value.
func parseField(line []byte) (field, bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 || !isToken(line[:i]) {
		return field{}, false
	}
	v := trimOWS(line[i+1:])
	if !isFieldValue(v) {
		return field{}, false
	}
	return field{name: line[:i], value: v, kind: classify(line[:i])}, true
}

// connTokens applies a Connection field's value: close and keep-alive set the flags, other
// tokens name more hop-by-hop fields, appended to names.
func connTokens(v []byte, names [][]byte, close, keepAlive *bool) [][]byte {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = trimOWS(v[:i]), v[i+1:]
		} else {
			tok, v = trimOWS(v), nil
		}
		switch {
		case eqFold(tok, "close"):
			*close = true
		case eqFold(tok, "keep-alive"):
			*keepAlive = true
		case len(tok) > 0 && isToken(tok) && len(names) < 32:
			names = append(names, tok)
		}
	}
	return names
}

// listed reports whether name is among names, ignoring case.
func listed(name []byte, names [][]byte) bool {
	for _, n := range names {
		if bytes.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// parseLength parses a Content-Length value: digits only, at most 18 of them.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// lastCodingChunked reports whether a Transfer-Encoding value ends with chunked.
func lastCodingChunked(v []byte) bool {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return eqFold(trimOWS(v), "chunked")
}

// eqFold reports whether b equals lower, a lower-case ASCII string, ignoring case.
func eqFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// eqFoldName is eqFold for field names where '_' also matches '-'.
func eqFoldName(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// tchar marks the bytes of RFC 9110's token.
var tchar = func() (t [256]bool) {
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

// isFieldValue refuses control bytes other than HTAB: NUL, CR, LF, DEL and the rest.
func isFieldValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
