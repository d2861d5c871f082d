package router_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"enjin/services/router"
)

// An answer's flush waits for the client's next request rather than reading for it at once
// (one system call less a request). A client that sends its next request before it has the
// answer — pipelining, the request arriving while the router waits on the backend — is not
// woken by it, so that wait is bounded: the request is answered a quarter of a second late,
// not at the idle timeout.
func TestRequestSentBeforeTheAnswerIsServed(t *testing.T) {
	rt := startRouter(t, router.Config{IdleTimeout: 20 * time.Second})
	rt.SetRoute("acme", "web", []router.Backend{startBackend(t, "web-1").Backend()})
	nc, err := net.Dial("tcp", rt.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(15 * time.Second))
	br := bufio.NewReader(nc)
	for round := range 3 {
		start := time.Now()
		if _, err := nc.Write([]byte("GET /slow?ms=300 HTTP/1.1\r\nHost: web.acme.apps.test\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the router has the first and waits on the backend
		if _, err := nc.Write([]byte("GET / HTTP/1.1\r\nHost: web.acme.apps.test\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			resp, body, err := readResponse(br, "GET")
			if err != nil || resp.StatusCode != 200 || body != "web-1" {
				t.Fatalf("round %d, answer %d: %v %q %v", round, i, resp, body, err)
			}
		}
		took := time.Since(start)
		t.Logf("round %d: both answered after %v", round, took.Round(time.Millisecond))
		if took > 2*time.Second {
			t.Errorf("round %d: the second answer came after %v; want it within the await bound, not the idle timeout", round, took)
		}
	}
}
