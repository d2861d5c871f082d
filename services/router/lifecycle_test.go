package router_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"enjin/services/router"
)

// syncBuffer is a bytes.Buffer safe for the router's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAccessLog(t *testing.T) {
	var out syncBuffer
	buf := router.NewLogBuffer(&out, time.Hour)
	rt := startRouter(t, router.Config{Logger: slog.New(slog.NewJSONHandler(buf, nil))})
	rt.SetRoute("acme", "web", []router.Backend{startBackend(t, "web-1").Backend()})
	rt.SetRoute("acme", "down", nil)
	c := client(rt)
	get(t, c, "http://web.acme.apps.test/a?b=c")
	get(t, c, "http://nope.acme.apps.test/")
	get(t, c, "http://down.acme.apps.test/")
	if out.String() != "" {
		t.Errorf("LogBuffer wrote before its interval or Close: %q", out.String())
	}
	if err := buf.Close(); err != nil {
		t.Fatal(err)
	}
	type line struct {
		Msg, Host, Method, Path, Backend string
		Status, Bytes                    int
		Duration                         int64
	}
	want := []line{
		{"request", "web.acme.apps.test", "GET", "/a?b=c", "web-1", 200, 5, 0},
		{"request", "nope.acme.apps.test", "GET", "/", "", 404, len("unknown host\n"), 0},
		{"request", "down.acme.apps.test", "GET", "/", "", 503, len("no healthy instance of app down.acme\n"), 0},
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d log lines want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, l := range lines {
		var got line
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, l)
		}
		if got.Duration <= 0 {
			t.Errorf("line %d: got duration %d want > 0", i, got.Duration)
		}
		got.Duration = 0
		if got != want[i] {
			t.Errorf("line %d: got %+v want %+v", i, got, want[i])
		}
	}
}

// TestGracefulShutdown ends Serve's context while a request is in flight: the request is
// answered, idle connections are closed, and Serve returns.
func TestGracefulShutdown(t *testing.T) {
	rt, err := router.New(router.Config{AppsDomain: domain})
	if err != nil {
		t.Fatal(err)
	}
	rt.SetRoute("acme", "web", []router.Backend{startBackend(t, "web-1").Backend()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, ln) }() // ends when ctx is canceled
	waitFor(t, "Serve to start", func() bool { return rt.Addr() != nil })

	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	type result struct {
		status int
		body   string
	}
	res := make(chan result, 1)
	go func() { // ends when the slow request is answered
		s, b := get(t, client(rt), "http://web.acme.apps.test/slow?ms=300")
		res <- result{s, b}
	}()
	waitFor(t, "the slow request to reach the backend", func() bool { return rt.Inflight("web-1") == 1 })
	cancel()
	if r := <-res; r.status != 200 || r.body != "web-1" {
		t.Errorf("in-flight request: got %d %q want 200 web-1", r.status, r.body)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: got %v want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	idle.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection: got %d, %v want EOF", n, err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("router still accepts connections after Serve returned")
	}
	if s := rt.Stats(); s.Conns != 0 {
		t.Errorf("got %d open connections after Serve returned want 0", s.Conns)
	}
}

// TestDrained: a backend taken out of its app's set while a request is in flight on it drains
// by signal. Drained's channel stays open while the request is in flight and closes when it
// ends, with Inflight then 0.
func TestDrained(t *testing.T) {
	rt := startRouter(t, router.Config{})
	rt.SetRoute("acme", "web", []router.Backend{startBackend(t, "web-1").Backend()})
	body, send := io.Pipe()
	res := make(chan int, 1)
	go func() { // ends when send is closed and the echo answered
		req, _ := http.NewRequest("POST", "http://web.acme.apps.test/echo", body)
		resp, err := client(rt).Do(req)
		if err != nil {
			res <- 0
			return
		}
		resp.Body.Close()
		res <- resp.StatusCode
	}()
	send.Write([]byte("part"))
	waitFor(t, "the request to reach the backend", func() bool { return rt.Inflight("web-1") == 1 })
	rt.SetRoute("acme", "web", nil)
	drained := rt.Drained()
	if n := rt.Inflight("web-1"); n != 1 {
		t.Fatalf("Inflight(web-1) = %d after SetRoute want 1 (the request in flight)", n)
	}
	select {
	case <-drained:
		t.Fatal("Drained closed while a request is in flight on the retired backend")
	case <-time.After(50 * time.Millisecond):
	}
	send.Close()
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("Drained not closed 10 s after the retired backend's last request ended")
	}
	if n := rt.Inflight("web-1"); n != 0 {
		t.Errorf("Inflight(web-1) = %d after Drained want 0", n)
	}
	if s := <-res; s != 200 {
		t.Errorf("the request in flight: got status %d want 200", s)
	}
}

// TestServeAndServeTLSShutDownTogether: one router accepting on a plain and a TLS listener,
// each with its own context, while clients keep connecting to both. Ending one context shuts
// the whole router down: both calls return nil, neither listener accepts any more, no
// connection is left open, and a Serve after that refuses at once. Run under -race it also
// checks that no connection is counted after the shutdown began to wait for them.
func TestServeAndServeTLSShutDownTogether(t *testing.T) {
	for round := range 20 {
		rt, err := router.New(router.Config{AppsDomain: domain, ShutdownTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		plain, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		secure, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		plainCtx, endPlain := context.WithCancel(context.Background())
		tlsCtx, endTLS := context.WithCancel(context.Background())
		defer endTLS()
		done := make(chan error, 2)
		go func() { done <- rt.Serve(plainCtx, plain) }()   // ends when the router shuts down
		go func() { done <- rt.ServeTLS(tlsCtx, secure) }() // ends when the router shuts down
		waitFor(t, "both listeners", func() bool { return rt.Addr() != nil && rt.TLSAddr() != nil })

		stop := make(chan struct{})
		var clients sync.WaitGroup
		var answered [2]int
		for i, addr := range []string{plain.Addr().String(), secure.Addr().String()} {
			clients.Go(func() { // ends when stop is closed
				for {
					select {
					case <-stop:
						return
					default:
					}
					nc, err := net.DialTimeout("tcp", addr, time.Second)
					if err != nil {
						continue // refused: the router has shut down
					}
					nc.SetDeadline(time.Now().Add(2 * time.Second))
					nc.Write([]byte("GET / HTTP/1.1\r\nHost: nope.acme.apps.test\r\n\r\n"))
					if n, _ := nc.Read(make([]byte, 64)); n > 0 {
						answered[i]++
					}
					nc.Close()
				}
			})
		}
		waitFor(t, "plain answers", func() bool { return rt.Stats().Requests >= 20 })
		endPlain()
		for range 2 {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("round %d: Serve/ServeTLS: got %v want nil", round, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: the other listener's call did not return after the router shut down", round)
			}
		}
		close(stop)
		clients.Wait()
		for _, addr := range []string{plain.Addr().String(), secure.Addr().String()} {
			if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				nc.Close()
				t.Errorf("round %d: %s still accepts after the router shut down", round, addr)
			}
		}
		if n := rt.Stats().Conns; n != 0 {
			t.Errorf("round %d: got %d open connections after shutdown want 0", round, n)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Serve(context.Background(), ln); err == nil {
			t.Errorf("round %d: Serve on a router that shut down: got nil want an error", round)
		}
		if nc, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
			nc.Close()
			t.Errorf("round %d: Serve on a router that shut down left its listener open", round)
		}
		if round == 0 {
			t.Logf("round 0: %d plain answers, %d on the TLS listener (no certificate: closed at the handshake)", answered[0], answered[1])
		}
	}
}
