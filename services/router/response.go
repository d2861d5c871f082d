package router

// bodyMode says how a message's body is delimited.
type bodyMode uint8

const (
	bodyNone    bodyMode = iota
	bodyLength           // Content-Length bytes
	bodyChunked          // chunked transfer coding
	bodyEOF              // until the sender closes the connection
)

// response is an upstream response's parsed head, pointing into its raw head.
type response struct {
	status  int
	line    []byte // "200 OK": the status line after the version
	fields  []field
	hop     [][]byte
	length  int64
	mode    bodyMode
	close   bool // the upstream connection cannot be used again
	interim bool // 1xx: a final response follows
}

// parse parses raw, a response head, to a request with method HEAD if head is set.
// It returns false for anything it cannot frame without guessing.
func (p *response) parse(raw []byte, head, upgrade bool) bool {
	*p = response{fields: p.fields[:0], hop: p.hop[:0], length: -1}
	line, rest := cutLine(raw)
	// "HTTP/1.x SP 3DIGIT [SP reason]"
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || len(line) > 12 && line[12] != ' ' {
		return false
	}
	minor := line[7]
	code := line[9:12]
	for _, c := range code {
		if c < '0' || c > '9' {
			return false
		}
	}
	p.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if p.status < 100 || !isFieldValue(line[9:]) {
		return false
	}
	p.line = line[9:]
	keepAlive, te := false, false
	for {
		line, rest = cutLine(rest)
		if len(line) == 0 {
			break
		}
		f, ok := parseField(line)
		if !ok {
			return false
		}
		switch f.kind {
		case kContentLength:
			n, ok := parseLength(f.value)
			if !ok || p.length >= 0 && n != p.length {
				return false
			}
			p.length = n
		case kTransferEncoding:
			te = true
			if lastCodingChunked(f.value) {
				p.mode = bodyChunked
			} else {
				p.mode = bodyEOF
			}
		case kConnection:
			p.hop = connTokens(f.value, p.hop, &p.close, &keepAlive)
		}
		p.fields = append(p.fields, f)
	}
	if minor == '0' && !keepAlive {
		p.close = true
	}
	switch {
	case p.status == 101 && upgrade: // the app takes the WebSocket: no body, a tunnel follows
		p.mode = bodyNone
	case p.status < 200:
		p.interim, p.mode = true, bodyNone
		return p.status != 101 // switching protocols only when the router asked to
	case head || p.status == 204 || p.status == 304:
		p.mode = bodyNone
	case te:
		if p.length >= 0 { // RFC 9112 §6.3: smuggling-shaped; do not reuse the connection
			p.close = true
		}
		if p.mode == bodyEOF {
			p.close = true
		}
		p.length = -1
	case p.length >= 0:
		p.mode = bodyLength
	default:
		p.mode, p.close = bodyEOF, true
	}
	return true
}

// reason returns the standard text for the statuses the router writes itself.
func reason(status int) string {
	switch status {
	case 200:
		return "200 OK"
	case 400:
		return "400 Bad Request"
	case 404:
		return "404 Not Found"
	case 405:
		return "405 Method Not Allowed"
	case 408:
		return "408 Request Timeout"
	case 417:
		return "417 Expectation Failed"
	case 421:
		return "421 Misdirected Request"
	case 431:
		return "431 Request Header Fields Too Large"
	case 502:
		return "502 Bad Gateway"
	case 503:
		return "503 Service Unavailable"
	case 504:
		return "504 Gateway Timeout"
	}
	return "500 Internal Server Error"
}

// forwarded reports whether a field is passed on: hop-by-hop fields, those the Connection
// field names and the framing the router writes itself are not. A request passes only kOther
// fields (the router writes Host and the forwarding fields); a response passes all but the
// framing.
func forwarded(f *field, hop [][]byte, isResponse bool) bool {
	switch f.kind {
	case kOther:
	case kHost, kExpect, kForwarding:
		if !isResponse {
			return false
		}
	default:
		return false
	}
	return len(hop) == 0 || !listed(f.name, hop)
}
