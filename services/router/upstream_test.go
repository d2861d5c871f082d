package router_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"enjin/services/router"
)

// TestUpstreamFailure kills backends and checks what clients get: a GET is retried on a
// live backend; with none left to dial it is held for the set to change (Config.Hold), then
// gets 503 with Retry-After, as does a POST.
func TestUpstreamFailure(t *testing.T) {
	const hold = 150 * time.Millisecond
	rt := startRouter(t, router.Config{Hold: hold})
	a, b := startBackend(t, "a"), startBackend(t, "b")
	rt.SetRoute("acme", "web", []router.Backend{a.Backend(), b.Backend()})
	c := client(rt)
	for range 10 { // warm both backends' connection pools
		get(t, c, "http://web.acme.apps.test/")
	}
	a.srv.Close()
	for i := range 20 {
		if status, body := get(t, c, "http://web.acme.apps.test/"); status != 200 || body != "b" {
			t.Fatalf("GET %d with a dead: got %d %q want 200 from b", i, status, body)
		}
	}
	s := rt.Stats()
	t.Logf("with a dead: %v", s)
	if s.Retries == 0 || s.UpstreamErrors == 0 {
		t.Errorf("got %d retries and %d upstream errors want some", s.Retries, s.UpstreamErrors)
	}

	b.srv.Close()
	t0 := time.Now()
	resp, err := c.Get("http://web.acme.apps.test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if waited := time.Since(t0); resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || waited < hold {
		t.Errorf("GET with both dead: got %d (Retry-After %q) after %v, want 503 with Retry-After after %v", resp.StatusCode, resp.Header.Get("Retry-After"), waited, hold)
	}
	resp, err = c.Post("http://web.acme.apps.test/echo", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("POST with both dead: got %d want 503", resp.StatusCode)
	}
	t.Logf("with both dead: %v", rt.Stats())
	if s := rt.Stats(); s.Held != 2 {
		t.Errorf("held %d requests, want 2", s.Held)
	}
}

// TestHoldWhileRestarting: requests for an app none of whose instances can take them (its
// only one gone, or none healthy yet) wait for one and are served by it — a POST with its
// body too — and none is answered with an error while one comes within the hold; an app
// with no instance on the way still answers at once with Hold off.
func TestHoldWhileRestarting(t *testing.T) {
	rt := startRouter(t, router.Config{Hold: 5 * time.Second})
	c := client(rt)
	a := startBackend(t, "a")
	rt.SetRoute("acme", "one", []router.Backend{a.Backend()})
	if status, body := get(t, c, "http://one.acme.apps.test/"); status != 200 || body != "a" {
		t.Fatalf("before: %d %q", status, body)
	}
	a.srv.Close() // the only instance dies; its set still names it
	type answer struct {
		status int
		body   string
	}
	answers := make(chan answer, 20)
	for range 10 { // GETs while the set still names the dead instance
		go func() { // ends with its request
			status, body := get(t, c, "http://one.acme.apps.test/")
			answers <- answer{status, body}
		}()
	}
	waitFor(t, "the GETs held", func() bool { return rt.Stats().Held >= 10 })
	rt.SetRoute("acme", "one", nil) // the instance is seen gone: none healthy
	for range 10 {                  // POSTs with none healthy
		go func() { // ends with its request
			resp, err := c.Post("http://one.acme.apps.test/echo", "text/plain", strings.NewReader("hello"))
			if err != nil {
				answers <- answer{0, err.Error()}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers <- answer{resp.StatusCode, string(b)}
		}()
	}
	waitFor(t, "the POSTs held", func() bool { return rt.Stats().Held >= 20 })
	b := startBackend(t, "b")
	rt.SetRoute("acme", "one", []router.Backend{b.Backend()}) // and its successor healthy
	for range 20 {
		if x := <-answers; x.status != 200 || (x.body != "b" && x.body != "hello") {
			t.Errorf("a held request: %d %q, want 200 from the new instance", x.status, x.body)
		}
	}
	t.Logf("20 requests held while the only instance was replaced: %v", rt.Stats())

	off := startRouter(t, router.Config{Hold: -1})
	off.SetRoute("acme", "none", nil)
	t0 := time.Now()
	if status, _ := get(t, client(off), "http://none.acme.apps.test/"); status != 503 || time.Since(t0) > time.Second {
		t.Errorf("with Hold off, an app with no instance: %d after %v, want 503 at once", status, time.Since(t0))
	}
}

// TestUpstreamBreaks covers a backend that dies mid-answer, one whose kept-alive connections
// were closed, and one too slow.
func TestUpstreamBreaks(t *testing.T) {
	rt := startRouter(t, router.Config{UpstreamTimeout: 300 * time.Millisecond})
	c := client(rt)

	t.Run("dies before answering", func(t *testing.T) {
		ln := hangUpBackend(t, "")
		rt.SetRoute("acme", "dies", []router.Backend{{ID: "dies", Addr: ln}})
		if status, _ := get(t, c, "http://dies.acme.apps.test/"); status != 502 {
			t.Errorf("got %d want 502", status)
		}
	})
	t.Run("dies mid-head", func(t *testing.T) {
		ln := hangUpBackend(t, "HTTP/1.1 200 OK\r\nContent-Le")
		rt.SetRoute("acme", "midhead", []router.Backend{{ID: "midhead", Addr: ln}})
		if status, _ := get(t, c, "http://midhead.acme.apps.test/"); status != 502 {
			t.Errorf("got %d want 502", status)
		}
	})
	t.Run("dies mid-body", func(t *testing.T) {
		ln := hangUpBackend(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
		rt.SetRoute("acme", "midbody", []router.Backend{{ID: "midbody", Addr: ln}})
		resp, err := c.Get("http://midbody.acme.apps.test/")
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || err == nil {
			t.Errorf("got %d and %v want 200 and a truncated body", resp.StatusCode, err)
		}
	})
	t.Run("dies while the client sends its body", func(t *testing.T) {
		ln := hangUpBackend(t, "")
		rt.SetRoute("acme", "bodydies", []router.Backend{{ID: "bodydies", Addr: ln}})
		status, elapsed := trickle(t, rt, "bodydies")
		if status != 502 || elapsed > 2*time.Second {
			t.Errorf("got %d after %v want 502 at once", status, elapsed)
		}
	})
	t.Run("answers before reading the body", func(t *testing.T) {
		ln := hangUpBackend(t, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\n\r\nno", 5*time.Second)
		rt.SetRoute("acme", "early", []router.Backend{{ID: "early", Addr: ln}})
		status, elapsed := trickle(t, rt, "early")
		if status != 413 || elapsed > 2*time.Second {
			t.Errorf("got %d after %v want 413 at once", status, elapsed)
		}
	})
	t.Run("stale kept-alive connections", func(t *testing.T) {
		b := startBackend(t, "stale")
		rt.SetRoute("acme", "stale", []router.Backend{b.Backend()})
		for i := range 5 {
			get(t, c, "http://stale.acme.apps.test/")
			b.srv.CloseClientConnections() // the router's pooled connection goes stale
			time.Sleep(10 * time.Millisecond)
			if status, body := get(t, c, "http://stale.acme.apps.test/"); status != 200 || body != "stale" {
				t.Fatalf("round %d: got %d %q want 200 stale", i, status, body)
			}
		}
	})
	t.Run("restarted with connections kept", func(t *testing.T) {
		b := startBackend(t, "restart")
		rt.SetRoute("acme", "restart", []router.Backend{b.Backend()})
		var wg sync.WaitGroup
		for range 8 { // several kept-alive upstream connections
			wg.Go(func() { get(t, client(rt), "http://restart.acme.apps.test/slow?ms=20") })
		}
		wg.Wait()
		b.srv.CloseClientConnections() // all of them go stale at once
		time.Sleep(10 * time.Millisecond)
		for i := range 8 {
			if status, body := get(t, c, "http://restart.acme.apps.test/"); status != 200 || body != "restart" {
				t.Fatalf("GET %d after the restart: got %d %q want 200 restart", i, status, body)
			}
		}
		resp, err := c.Post("http://restart.acme.apps.test/echo", "text/plain", strings.NewReader("hi"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("POST after the restart: got %d want 200", resp.StatusCode)
		}
	})
	t.Run("too slow", func(t *testing.T) {
		b := startBackend(t, "slow")
		rt.SetRoute("acme", "slow", []router.Backend{b.Backend()})
		if status, _ := get(t, c, "http://slow.acme.apps.test/slow?ms=1000"); status != 504 {
			t.Errorf("got %d want 504", status)
		}
	})
	t.Logf("stats: %v", rt.Stats())
}

// hangUpBackend accepts connections, reads a request head, writes answer, waits for hold
// (if given) and closes.
func hangUpBackend(t *testing.T, answer string, hold ...time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { // ends when the listener is closed
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // ends when hold has passed
				http.ReadRequest(bufio.NewReader(nc))
				io.WriteString(nc, answer)
				for _, d := range hold {
					time.Sleep(d)
				}
				nc.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// trickle sends app a POST whose body stalls after 10 of 1000 bytes, and returns the
// status answered, how long that took, and checks the router then closes the connection.
func trickle(t *testing.T, rt *router.Router, app string) (int, time.Duration) {
	t.Helper()
	nc, err := net.Dial("tcp", rt.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	io.WriteString(nc, "POST / HTTP/1.1\r\nHost: "+app+".acme.apps.test\r\nContent-Length: 1000\r\n\r\n0123456789")
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	resp, _, err := readResponse(br, "POST")
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	elapsed := time.Since(start)
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after the answer: got %d bytes, %v want EOF", n, err)
	}
	return resp.StatusCode, elapsed
}
