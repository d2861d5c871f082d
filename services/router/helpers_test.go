package router_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"enjin/services/router"
)

const domain = "apps.test"

// startRouter serves a router on a loopback port until the test ends.
func startRouter(t *testing.T, cfg router.Config) *router.Router {
	t.Helper()
	if cfg.AppsDomain == "" {
		cfg.AppsDomain = domain
	}
	rt, err := router.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, ln) }() // ends at cleanup
	waitFor(t, "Serve to start", func() bool { return rt.Addr() != nil })
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return rt
}

// testLogger sends the router's log to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// backend is a test backend: it answers with its name and echoes what it was sent.
type backend struct {
	name string
	srv  *httptest.Server
}

func (b *backend) Backend() router.Backend {
	return router.Backend{ID: b.name, Addr: b.srv.Listener.Addr().String()}
}

// startBackend starts a backend that the test closes at its end (if not closed before).
//
//	/echo      answers with the request body (read whole first)
//	/chunked   answers with a chunked body of n lines (?n=), flushed line by line
//	/headers   answers with the request's header fields, one "Name: value" per line
//	/slow      sleeps ?ms= milliseconds, then answers its name
//	anything   answers its name
func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		switch r.URL.Path {
		case "/echo":
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			w.Header().Set("X-Request-Framing", fmt.Sprintf("cl=%d te=%v", r.ContentLength, r.TransferEncoding))
			w.Write(body)
		case "/chunked":
			n := 10
			fmt.Sscan(r.URL.Query().Get("n"), &n)
			for i := range n {
				fmt.Fprintf(w, "line %d of %s\n", i, name)
				w.(http.Flusher).Flush()
			}
		case "/headers":
			fmt.Fprintf(w, "Host: %s\n", r.Host)
			for k, vs := range r.Header {
				for _, v := range vs {
					fmt.Fprintf(w, "%s: %s\n", k, v)
				}
			}
		case "/slow":
			var ms int
			fmt.Sscan(r.URL.Query().Get("ms"), &ms)
			time.Sleep(time.Duration(ms) * time.Millisecond)
			io.WriteString(w, name)
		default:
			io.WriteString(w, name)
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// client returns an HTTP client that sends every request to rt, whatever the URL's host.
func client(rt *router.Router) *http.Client {
	addr := rt.Addr().String()
	d := net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "tcp", addr)
			},
			MaxIdleConnsPerHost: 64,
		},
	}
}

// get fetches url through c and returns the status and body.
func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// rawExchange writes req to the router over a fresh TCP connection, half-closes, and
// returns the status code of the first response (0 if none) and everything read.
func rawExchange(addr string, req []byte, timeout time.Duration) (int, string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(req); err != nil {
		return 0, "", err
	}
	c.(*net.TCPConn).CloseWrite()
	all, err := io.ReadAll(c)
	return statusOf(all), string(all), err
}

// statusOf parses the status code of the first response in b, or returns 0.
func statusOf(b []byte) int {
	line, _, _ := strings.Cut(string(b), "\r\n")
	var code int
	if _, err := fmt.Sscanf(line, "HTTP/1.1 %d", &code); err != nil {
		return 0
	}
	return code
}

// readResponse reads one response from br with net/http's parser.
func readResponse(br *bufio.Reader, method string) (*http.Response, string, error) {
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// waitFor polls cond every few milliseconds until it holds or the test's deadline nears.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
