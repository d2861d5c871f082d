package router

import (
	"bufio"
	"bytes"
	"io"
	"time"
)

// Hooks into the package's internals for the external tests.

// ParseRequestHead reads and parses one request head as the router does and returns the
// status it would answer with (0: accepted), the host and whether a body follows.
func ParseRequestHead(b []byte, limit int) (status int, host string, body bool) {
	raw, err := readHead(bufio.NewReader(bytes.NewReader(b)), nil, limit, nil, time.Time{})
	switch {
	case err == errHeadTooLarge:
		return 431, "", false
	case err != nil:
		return 400, "", false
	}
	var q request
	if bad := q.parse(raw); bad != nil {
		return bad.status, "", false
	}
	return 0, string(q.host), q.hasBody()
}

// DecodeChunked decodes a chunked body as the router does and returns the data.
func DecodeChunked(b []byte) ([]byte, error) {
	src := bodyReader{br: bufio.NewReaderSize(bytes.NewReader(b), 64), mode: bodyChunked}
	var out []byte
	for {
		p, err := src.next(nil)
		out = append(out, p...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// ParseResponseHead parses a response head as the router does; ok says it could frame it.
func ParseResponseHead(b []byte) (status int, ok bool) {
	raw, err := readHead(bufio.NewReader(bytes.NewReader(b)), nil, 64<<10, nil, time.Time{})
	if err != nil {
		return 0, false
	}
	var p response
	if !p.parse(raw, false, false) {
		return 0, false
	}
	return p.status, true
}

// HeadBuilder builds upstream request heads as a connection from one client address does,
// reusing its buffers from head to head as the connection does.
type HeadBuilder struct{ c conn }

// NewHeadBuilder returns a builder for a client at ip.
func NewHeadBuilder(ip string) *HeadBuilder {
	return &HeadBuilder{c: conn{ip: []byte(ip)}}
}

// Build parses raw, a request head ending in an empty line, and returns the status the
// router would refuse it with (0: accepted) and the head it would send upstream. The head
// is valid until the next Build.
func (h *HeadBuilder) Build(raw []byte) (int, []byte) {
	if bad := h.c.req.parse(raw); bad != nil {
		return bad.status, nil
	}
	h.c.buildHead()
	return 0, h.c.out
}

// UpstreamHead reads one request head from b as the router does and returns the status it
// would refuse it with (0: accepted) and the head it would send upstream for a client at ip.
func UpstreamHead(b []byte, ip string) (int, string) {
	raw, err := readHead(bufio.NewReader(bytes.NewReader(b)), nil, 8<<10, nil, time.Time{})
	if err != nil {
		return 400, ""
	}
	status, out := NewHeadBuilder(ip).Build(raw)
	return status, string(out)
}
