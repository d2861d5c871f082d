package router_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"enjin/services/router"
)

// spoofNames are the fields a client might use to lie about its address or scheme.
var spoofNames = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port",
	"X-Forwarded-Ssl", "X-Forwarded-Scheme", "X-Forwarded-Prefix", "X-Real-IP", "Forwarded", "X-Client-IP",
	"True-Client-IP", "X-Cluster-Client-IP", "Front-End-Https", "X-Url-Scheme"}

// spellings write a field name as a hostile client might.
var spellings = []func(string) string{
	func(s string) string { return s },
	strings.ToLower,
	strings.ToUpper,
	func(s string) string { // aLtErNaTiNg
		b := []byte(strings.ToLower(s))
		for i := 0; i < len(b); i += 2 {
			b[i] = strings.ToUpper(string(b[i]))[0]
		}
		return string(b)
	},
	func(s string) string { return strings.ReplaceAll(s, "-", "_") }, // CGI reads it as the same
}

// spoofValues carry markers (6.6.6.6, 7.7.7.7, db8, evil, https) that must never reach the
// backend.
var spoofValues = []string{"6.6.6.6", "6.6.6.6, 7.7.7.7", `for="6.6.6.6, 7.7.7.7";proto=https;host=evil.example`,
	`for="[2001:db8::6]:443";by=evil`, `for=6.6.6.6, for=7.7.7.7`, "", "evil.example:443", "https", "\t6.6.6.6 ", "on"}

// TestSpoofedForwardingReplaced sends every spoofing shape — each name in every spelling,
// with every value, once, twice or three times, around the Host field — and checks the
// backend sees exactly the router's forwarding fields and none of the client's.
func TestSpoofedForwardingReplaced(t *testing.T) {
	rt := startRouter(t, router.Config{})
	rt.SetRoute("acme", "web", []router.Backend{startBackend(t, "web-1").Backend()})
	nc, err := net.Dial("tcp", rt.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	attempts := 0
	for _, name := range spoofNames {
		for si, spell := range spellings {
			for vi, v := range spoofValues {
				n := 1 + (si+vi)%3
				var spoof strings.Builder
				for range n {
					fmt.Fprintf(&spoof, "%s: %s\r\n", spell(name), v)
				}
				req := "GET /headers HTTP/1.1\r\n" + spoof.String() + "Host: web.acme.apps.test\r\n" + spoof.String() +
					"Connection: " + spell(name) + "\r\n\r\n"
				attempts++
				nc.Write([]byte(req))
				resp, body, err := readResponse(br, "GET")
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("%q: got %v %v want 200", req, resp, err)
				}
				if msg := checkForwarding(body, "127.0.0.1", "127.0.0.1", "web.acme.apps.test"); msg != "" {
					t.Fatalf("request\n%s\nbackend saw:\n%s\n%s", req, body, msg)
				}
			}
		}
	}
	// Shapes that are refused whole: nothing reaches the backend.
	refused := []string{
		"X-Forwarded-For: 1.2.3.4\r\n 6.6.6.6\r\n",   // obs-fold
		"X-Forwarded-For: 1.2.3.4\r\n\t6.6.6.6\r\n",  // obs-fold with a tab
		"X-Forwarded-For : 6.6.6.6\r\n",              // white space before the colon
		"X-Forwarded-For\t: 6.6.6.6\r\n",             // a tab before the colon
		"X-Forwarded-For: 6.6.6.6\x00\r\n",           // NUL in the value
		"X-Forwarded-For: 6.6.6.6\rX-A: b\r\n",       // a bare CR
		"X-Forwarded-For: 6.6.6.6\nX-Real-IP: 6\r\n", // a bare LF
		" X-Forwarded-For: 6.6.6.6\r\n",              // leading white space on the first field
		"X-Forwarded\x7fFor: 6.6.6.6\r\n",            // DEL in the name
	}
	for _, f := range refused {
		attempts++
		req := "GET /headers HTTP/1.1\r\nHost: web.acme.apps.test\r\n" + f + "\r\n"
		status, all, err := rawExchange(rt.Addr().String(), []byte(req), 5*time.Second)
		if status != 400 || strings.Contains(all, "6.6.6.6") {
			t.Errorf("%q: got %d %v want 400 and no echo:\n%s", f, status, err, all)
		}
	}
	t.Logf("%d spoofing attempts, every one replaced or refused", attempts)
}

// checkForwarding checks a /headers answer carries the router's forwarding fields once each
// and none of a client's, and returns what is wrong.
func checkForwarding(body, xff, node, host string) string {
	want := map[string][]string{
		"x-forwarded-for":   {xff},
		"x-real-ip":         {xff},
		"x-forwarded-proto": {"http"},
		"x-forwarded-host":  {host},
		"forwarded":         {"for=" + node + ";proto=http;host=\"" + host + "\""},
	}
	got := map[string][]string{}
	for line := range strings.Lines(body) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
		k = strings.ReplaceAll(strings.ToLower(k), "_", "-")
		if want[k] != nil || slices.ContainsFunc(spoofNames, func(n string) bool { return strings.EqualFold(n, k) }) ||
			strings.HasPrefix(k, "x-forwarded-") {
			got[k] = append(got[k], v)
		}
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			return fmt.Sprintf("%s: got %q want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("forwarding fields %q, want only the router's", got)
	}
	for _, marker := range []string{"6.6.6", "7.7.7", "db8", "evil", "https", ": on"} {
		if strings.Contains(strings.ToLower(body), marker) {
			return fmt.Sprintf("the client's %q got through", marker)
		}
	}
	return ""
}

// TestForwardedNode checks the forwarding fields for IPv4, IPv6 and zoned addresses, and
// that writing them costs no allocation.
func TestForwardedNode(t *testing.T) {
	raw := []byte("GET / HTTP/1.1\r\nHost: web.acme.apps.test:8080\r\nforwarded: for=6.6.6.6\r\n" +
		"X-FORWARDED-FOR: 6.6.6.6\r\nx_real_ip: 6.6.6.6\r\nENJIN-HOP: 7\r\nX-Keep: 1\r\n\r\n")
	for _, tt := range []struct{ ip, node string }{
		{"192.0.2.7", "192.0.2.7"},
		{"2001:db8::7", `"[2001:db8::7]"`},
		{"", "unknown"},
	} {
		h := router.NewHeadBuilder(tt.ip)
		status, out := h.Build(slices.Clone(raw))
		if status != 0 {
			t.Fatalf("%s: refused with %d", tt.ip, status)
		}
		want := "GET / HTTP/1.1\r\nHost: web.acme.apps.test:8080\r\nX-Forwarded-For: " + tt.ip + "\r\nX-Real-IP: " + tt.ip +
			"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: web.acme.apps.test:8080\r\nForwarded: for=" + tt.node +
			";proto=http;host=\"web.acme.apps.test:8080\"\r\nEnjin-Hop: 1\r\nX-Keep: 1\r\n\r\n"
		if string(out) != want {
			t.Errorf("%s: got\n%q\nwant\n%q", tt.ip, out, want)
		}
		if n := testing.AllocsPerRun(100, func() { h.Build(raw) }); n != 0 {
			t.Errorf("%s: %v allocations per head, want 0", tt.ip, n)
		}
	}
}

// TestForwardedFromIPv6 runs a spoofing client over IPv6 loopback:
// Forwarded names it as "[::1]", quoted.
func TestForwardedFromIPv6(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("no IPv6 loopback (these machines have one): %v", err)
	}
	rt, err := router.New(router.Config{AppsDomain: domain})
	if err != nil {
		t.Fatal(err)
	}
	rt.SetRoute("acme", "web", []router.Backend{startBackend(t, "web-1").Backend()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, ln) }() // ends at cleanup
	t.Cleanup(func() { cancel(); <-done })
	req := "GET /headers HTTP/1.1\r\nHost: web.acme.apps.test\r\nForwarded: for=\"[2001:db8::6]\"\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
	status, all, err := rawExchange(ln.Addr().String(), []byte(req), 5*time.Second)
	if status != 200 {
		t.Fatalf("got %d %v:\n%s", status, err, all)
	}
	_, body, _ := strings.Cut(all, "\r\n\r\n")
	if msg := checkForwarding(body, "::1", `"[::1]"`, "web.acme.apps.test"); msg != "" {
		t.Fatalf("backend saw:\n%s\n%s", body, msg)
	}
}
