package router_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"enjin/services/router"
)

// Two routers, each told the app runs on the other (stale word of a move): a request crosses
// from one to the other once, carrying Enjin-Hop, and is not sent back — it gets the app's
// 503 — whatever Enjin-Hop the client sent. A router with the app's instance and a peer
// sends a hopped request to the instance only.
func TestPeerRoutersHopOnce(t *testing.T) {
	a := startRouter(t, router.Config{Logger: testLogger(t), Hold: 50 * time.Millisecond})
	b := startRouter(t, router.Config{Logger: testLogger(t), Hold: 50 * time.Millisecond})
	a.SetRoute("acme", "web", []router.Backend{{ID: "peer/b", Addr: b.Addr().String(), Peer: true}})
	b.SetRoute("acme", "web", []router.Backend{{ID: "peer/a", Addr: a.Addr().String(), Peer: true}})
	for _, hop := range []string{"", "1"} {
		req, _ := http.NewRequest("GET", "http://web.acme.apps.test/", nil)
		if hop != "" {
			req.Header.Set("Enjin-Hop", hop)
		}
		resp, err := client(a).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Fatalf("a loop between two routers (client's Enjin-Hop %q): %d, want 503 from the second", hop, resp.StatusCode)
		}
	}
	if sa, sb := a.Stats(), b.Stats(); sa.Requests != 2 || sb.Requests != 1 {
		t.Fatalf("requests: a %d, b %d; want 2 and 1 (one hop, then none)", sa.Requests, sb.Requests)
	}

	// b runs the app: a's request reaches it through b, and b's own hopped requests go only
	// to its instance, never back to a.
	web := startBackend(t, "web-1")
	b.SetRoute("acme", "web", []router.Backend{web.Backend(), {ID: "peer/a", Addr: a.Addr().String(), Peer: true}})
	for range 10 {
		status, body := get(t, client(a), "http://web.acme.apps.test/headers")
		if status != 200 || !strings.Contains(body, "Enjin-Hop: 1") {
			t.Fatalf("through a to b's instance: %d %q", status, body)
		}
	}
	if sa := a.Stats(); sa.Requests != 12 {
		t.Fatalf("a served %d requests, want 12: b sent none back", sa.Requests)
	}
}

// An app behind two routers sees the client's address, not the first router's: the second
// takes X-Real-IP from a request that comes, with Enjin-Hop, from a peer router's address —
// and from no one else, whatever they send.
func TestPeerRouterKeepsTheClientAddress(t *testing.T) {
	a := startRouter(t, router.Config{Logger: testLogger(t)})
	b := startRouter(t, router.Config{Logger: testLogger(t)})
	web := startBackend(t, "web-1")
	a.SetRoute("acme", "web", []router.Backend{{ID: "peer/b", Addr: b.Addr().String(), Peer: true}})
	// b knows a as a peer (it routes another app there), and runs web itself.
	b.SetRoute("acme", "web", []router.Backend{web.Backend()})
	b.SetRoute("acme", "other", []router.Backend{{ID: "peer/a", Addr: a.Addr().String(), Peer: true}})
	from := func(src string, rt *router.Router, hdr map[string]string) string {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "tcp", rt.Addr().String())
			}}}
		defer c.CloseIdleConnections()
		req, _ := http.NewRequest("GET", "http://web.acme.apps.test/headers", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(l, "X-Real-Ip: "); ok {
				return v
			}
		}
		return ""
	}
	for range 3 { // on one kept-alive connection from a to b, request after request
		if got := from("127.0.0.2", a, nil); got != "127.0.0.2" {
			t.Fatalf("through a and b, the app saw %q; want the client, 127.0.0.2", got)
		}
	}
	if got := from("127.0.0.3", b, map[string]string{"Enjin-Hop": "1", "X-Real-IP": "6.6.6.6"}); got != "127.0.0.3" {
		t.Fatalf("a client claiming to be a router got %q through; want its own address", got)
	}
	if got := from("127.0.0.4", b, nil); got != "127.0.0.4" {
		t.Fatalf("straight to b: %q", got)
	}
}
