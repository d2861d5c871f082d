package router_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"enjin/services/router"
)

func TestRoutingByHost(t *testing.T) {
	rt := startRouter(t, router.Config{Logger: testLogger(t)})
	web, api := startBackend(t, "web-1"), startBackend(t, "api-1")
	rt.SetRoute("acme", "web", []router.Backend{web.Backend()})
	rt.SetRoute("globex", "api", []router.Backend{api.Backend()})
	rt.SetRoute("acme", "down", nil)
	c := client(rt)
	tests := []struct {
		url    string
		status int
		body   string
	}{
		{"http://web.acme.apps.test/", 200, "web-1"},
		{"http://api.globex.apps.test/x?y=1", 200, "api-1"},
		{"http://WEB.Acme.APPS.test:8080/", 200, "web-1"},
		{"http://web.acme.apps.test./", 200, "web-1"},
		{"http://api.acme.apps.test/", 404, "unknown host\n"},
		{"http://web.globex.apps.test/", 404, "unknown host\n"},
		{"http://x.web.acme.apps.test/", 404, "unknown host\n"},
		{"http://apps.test/", 404, "unknown host\n"},
		{"http://127.0.0.1/", 404, "unknown host\n"},
		{"http://down.acme.apps.test/", 503, "no healthy instance of app down.acme\n"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			status, body := get(t, c, tt.url)
			if status != tt.status || body != tt.body {
				t.Errorf("got %d %q want %d %q", status, body, tt.status, tt.body)
			}
		})
	}

	rt.SetRoute("acme", "web", nil)
	if status, body := get(t, c, "http://web.acme.apps.test/"); status != 503 || body != "no healthy instance of app web.acme\n" {
		t.Errorf("after an empty SetRoute: got %d %q want 503 and the app named", status, body)
	}
	rt.RemoveRoute("acme", "web")
	if status, _ := get(t, c, "http://web.acme.apps.test/"); status != 404 {
		t.Errorf("after RemoveRoute: got %d want 404", status)
	}
	s := rt.Stats()
	t.Logf("stats: %v", s)
	if s.Panics != 0 || s.UpstreamErrors != 0 {
		t.Errorf("got %d panics and %d upstream errors want 0", s.Panics, s.UpstreamErrors)
	}
}

func TestBalancing(t *testing.T) {
	rt := startRouter(t, router.Config{})
	var bs []router.Backend
	for _, n := range []string{"b1", "b2", "b3"} {
		bs = append(bs, startBackend(t, n).Backend())
	}
	rt.SetRoute("acme", "web", bs)
	c := client(rt)
	counts := map[string]int{}
	for range 300 {
		_, body := get(t, c, "http://web.acme.apps.test/")
		counts[body]++
	}
	t.Logf("sequential: %v", counts)
	for _, b := range bs {
		if counts[b.ID] < 60 {
			t.Errorf("%s got %d of 300 requests want at least 60", b.ID, counts[b.ID])
		}
	}
	// Concurrent slow requests spread by least-inflight.
	counts = map[string]int{}
	results := make(chan string, 30)
	for range 30 {
		go func() { // ends when its request is answered
			resp, err := c.Get("http://web.acme.apps.test/slow?ms=50")
			if err != nil {
				results <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- string(b)
		}()
	}
	for range 30 {
		counts[<-results]++
	}
	t.Logf("concurrent: %v", counts)
	for _, b := range bs {
		if counts[b.ID] < 5 {
			t.Errorf("%s got %d of 30 concurrent requests want at least 5", b.ID, counts[b.ID])
		}
	}
}

func TestBodies(t *testing.T) {
	rt := startRouter(t, router.Config{})
	rt.SetRoute("acme", "web", []router.Backend{startBackend(t, "web-1").Backend()})
	c := client(rt)

	t.Run("1 MiB body echoed", func(t *testing.T) {
		big := make([]byte, 1<<20)
		for i := range big {
			big[i] = byte(rand.IntN(256))
		}
		resp, err := c.Post("http://web.acme.apps.test/echo", "application/octet-stream", bytes.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || sha256.Sum256(got) != sha256.Sum256(big) {
			t.Fatalf("got %d, %d bytes (%v) want 200 and the same 1 MiB", resp.StatusCode, len(got), err)
		}
		if f := resp.Header.Get("X-Request-Framing"); f != "cl=1048576 te=[]" {
			t.Errorf("backend saw framing %q want Content-Length", f)
		}
	})
	t.Run("chunked request", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() { // ends when the body is written
			for i := range 100 {
				pw.Write(bytes.Repeat([]byte{byte('a' + i%26)}, 1000+i))
				time.Sleep(time.Millisecond)
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", "http://web.acme.apps.test/echo", pr)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := 0
		for i := range 100 {
			want += 1000 + i
		}
		if resp.StatusCode != 200 || len(got) != want {
			t.Fatalf("got %d and %d bytes want 200 and %d", resp.StatusCode, len(got), want)
		}
		if f := resp.Header.Get("X-Request-Framing"); f != "cl=-1 te=[chunked]" {
			t.Errorf("backend saw framing %q want chunked", f)
		}
	})
	t.Run("chunked response", func(t *testing.T) {
		resp, err := c.Get("http://web.acme.apps.test/chunked?n=500")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.HasPrefix(got, []byte("line 0 of web-1\n")) || strings.Count(string(got), "\n") != 500 {
			t.Fatalf("got %d and %d lines want 200 and 500 lines", resp.StatusCode, strings.Count(string(got), "\n"))
		}
		if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
			t.Errorf("got transfer encoding %v want chunked", resp.TransferEncoding)
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		resp, err := c.Head("http://web.acme.apps.test/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != int64(len("web-1")) {
			t.Errorf("got %d, Content-Length %d want 200 and 5", resp.StatusCode, resp.ContentLength)
		}
	})
}

func TestForwardedHeaders(t *testing.T) {
	rt := startRouter(t, router.Config{})
	rt.SetRoute("acme", "web", []router.Backend{startBackend(t, "web-1").Backend()})
	req := "GET /headers HTTP/1.1\r\nHost: Web.Acme.apps.test:80\r\nConnection: keep-alive, X-Secret\r\n" +
		"X-Secret: 1\r\nKeep-Alive: 300\r\nProxy-Authorization: Basic eA==\r\nUpgrade: websocket\r\nTE: trailers\r\n" +
		"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nX-Real-IP: 10.0.0.2\r\n" +
		"Forwarded: for=10.0.0.3;proto=https\r\nX-Forwarded-Port: 443\r\nX-Keep: yes\r\n\r\n"
	nc, err := net.Dial("tcp", rt.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte(req + req))
	br := bufio.NewReader(nc)
	for i := range 2 { // the second, pipelined, proves the connection was kept
		resp, body, err := readResponse(br, "GET")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d: got %v %v want 200", i, resp, err)
		}
		for _, want := range []string{"Host: web.acme.apps.test:80\n", "X-Forwarded-For: 127.0.0.1\n", "X-Real-Ip: 127.0.0.1\n",
			"X-Forwarded-Proto: http\n", "X-Forwarded-Host: web.acme.apps.test:80\n",
			"Forwarded: for=127.0.0.1;proto=http;host=\"web.acme.apps.test:80\"\n", "X-Keep: yes\n"} {
			if !strings.Contains(body, want) {
				t.Errorf("backend saw:\n%s\nwant a line %q", body, want)
			}
		}
		for _, bad := range []string{"X-Secret", "Keep-Alive", "Proxy-Authorization", "Upgrade", "Te:", "evil", "https",
			"10.0.0", "X-Forwarded-Port", "443"} {
			if strings.Contains(body, bad) {
				t.Errorf("backend saw:\n%s\nwant no %q", body, bad)
			}
		}
	}
}
