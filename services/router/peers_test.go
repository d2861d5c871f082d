package router_test

import (
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
