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
	if !p.parse(raw, false) {
		return 0, false
	}
	return p.status, true
}
