package router_test

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"testing"

	"enjin/services/router"
)

// FuzzRequestHead checks that parsing never panics and that whatever the router accepts,
// net/http parses too, with the same host and the same idea of whether a body follows:
// two parsers that disagree on framing are how requests are smuggled.
func FuzzRequestHead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: web.acme.apps.test\r\n\r\n"))
	f.Add([]byte("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Add([]byte("GET http://a.b/c HTTP/1.1\r\nHost: x\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"))
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range hostileKinds {
		f.Add([]byte(k(r).raw))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		status, host, body := router.ParseRequestHead(b, 8<<10)
		if status != 0 {
			return
		}
		if host == "" || host != strings.ToLower(host) {
			t.Fatalf("accepted %q with host %q", b, host)
		}
		// The router skips up to four empty lines before the request line (RFC 9112 §2.2);
		// net/http's parser does not, so compare what follows them.
		rest := b
		for i := 0; i < 4 && bytes.HasPrefix(rest, []byte("\r\n")); i++ {
			rest = rest[2:]
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(rest)))
		if err != nil {
			t.Fatalf("router accepted %q, net/http refused it: %v", b, err)
		}
		goBody := req.ContentLength > 0 || req.ContentLength == -1 && len(req.TransferEncoding) > 0
		if goBody != body {
			t.Fatalf("%q: router says body %v, net/http %v (length %d, coding %v)", b, body, goBody, req.ContentLength, req.TransferEncoding)
		}
		if !strings.EqualFold(req.Host, host) {
			t.Fatalf("%q: router routes host %q, net/http %q", b, host, req.Host)
		}
	})
}

// FuzzUpstreamHead checks that whatever head the router accepts, the head it sends upstream
// is one net/http reads, for the same host, with the router's forwarding fields once each
// and no forwarding field of the client's under any spelling.
func FuzzUpstreamHead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: web.acme.apps.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nforwarded: for=\"6.6.6.6, 7.7.7.7\";proto=https\r\nFORWARDED: for=x\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a:80\r\nX_Real_IP: 6.6.6.6\r\nx-forwarded-port: 443\r\nConnection: X-Forwarded-For\r\n\r\n"))
	f.Add([]byte("GET http://b.c:8/x HTTP/1.1\r\nHost: a\r\nX-Forwarded-Host: evil\r\nTrue-Client-IP: 6.6.6.6\r\n\r\n"))
	f.Add([]byte("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Forwarded-Ssl: on\r\n\r\nhello"))
	f.Fuzz(func(t *testing.T, b []byte) {
		status, head := router.UpstreamHead(b, "203.0.113.9")
		if status != 0 {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatalf("%q: net/http refuses the upstream head %q: %v", b, head, err)
		}
		host := req.Host
		want := map[string][]string{
			"x-forwarded-for":   {"203.0.113.9"},
			"x-real-ip":         {"203.0.113.9"},
			"x-forwarded-proto": {"http"},
			"x-forwarded-host":  {host},
			"forwarded":         {"for=203.0.113.9;proto=http;host=\"" + host + "\""},
		}
		for k, vs := range req.Header {
			n := strings.ReplaceAll(strings.ToLower(k), "_", "-")
			if w, ok := want[n]; ok {
				if k != http.CanonicalHeaderKey(n) || !slices.Equal(vs, w) {
					t.Fatalf("%q: upstream %s: %q, want only the router's %q", b, k, vs, w)
				}
				delete(want, n)
				continue
			}
			if strings.HasPrefix(n, "x-forwarded-") || slices.Contains(spoofNames, http.CanonicalHeaderKey(n)) {
				t.Fatalf("%q: the client's %s: %q went upstream", b, k, vs)
			}
		}
		if len(want) != 0 {
			t.Fatalf("%q: upstream head lacks %v", b, want)
		}
	})
}

// FuzzChunked checks that decoding never panics and that what the router accepts,
// net/http's decoder decodes to the same bytes.
func FuzzChunked(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n"))
	f.Add([]byte("0\r\n\r\n"))
	f.Add([]byte("fffffffffffffff\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := router.DecodeChunked(b)
		if err != nil {
			return
		}
		want, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("router decoded %q, net/http refused it: %v", b, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%q: router decoded %q, net/http %q", b, got, want)
		}
	})
}

// FuzzResponseHead checks that parsing an upstream's response head never panics.
func FuzzResponseHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 204\r\nConnection: close\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 100 Continue\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		status, ok := router.ParseResponseHead(b)
		if ok && (status < 100 || status > 999) {
			t.Fatalf("%q: accepted status %d", b, status)
		}
	})
}
