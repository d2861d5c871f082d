package router_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"enjin/services/router"
)

// wsBackend accepts WebSocket handshakes: it answers 101 with the key's answer field and
// then echoes every byte; a request without "Upgrade: websocket" gets 426.
func wsBackend(t *testing.T) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || !strings.EqualFold(r.Header.Get("Connection"), "upgrade") {
			http.Error(w, "want a websocket", http.StatusUpgradeRequired)
			return
		}
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer nc.Close()
		io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: for-"+
			r.Header.Get("Sec-WebSocket-Key")+"\r\n\r\n")
		io.Copy(nc, brw) // echo until the client closes
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) // ends at cleanup
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// A WebSocket through the router: the handshake reaches the app with its fields, the 101
// comes back, and bytes then pass both ways untouched — those the client sent with its head
// too — until the client closes, which the app sees. Other upgrades are not passed on, an
// app that declines is relayed as any answer, and the plain path still works on the side.
func TestWebSocket(t *testing.T) {
	rt := startRouter(t, router.Config{IdleTimeout: 200 * time.Millisecond})
	rt.SetRoute("acme", "ws", []router.Backend{{ID: "ws", Addr: wsBackend(t)}})
	plain := startBackend(t, "plain")
	rt.SetRoute("acme", "plain", []router.Backend{plain.Backend()})

	nc, err := net.Dial("tcp", rt.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "GET /chat HTTP/1.1\r\nHost: ws.acme.apps.test\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"+
		"Sec-WebSocket-Key: k3y\r\nSec-WebSocket-Version: 13\r\n\r\nearly ")
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get("Sec-WebSocket-Accept") != "for-k3y" {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	// Longer than the idle timeout, in pieces: a tunnel has no idle timeout.
	for _, msg := range []string{"one ", "two ", "three"} {
		time.Sleep(150 * time.Millisecond) // idle on purpose: the timeout must not cut the tunnel
		io.WriteString(nc, msg)
	}
	want := "early one two three"
	got := make([]byte, len(want))
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("through the tunnel: %q %v, want %q", got, err, want)
	}
	nc.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after the client closed: %q %v, want the app to close too", rest, err)
	}

	c := client(rt)
	for _, x := range []struct{ what, method, upgrade string }{{"h2c", "GET", "h2c"}, {"websocket on a POST", "POST", "websocket"}} {
		req, _ := http.NewRequest(x.method, "http://plain.acme.apps.test/headers", strings.NewReader("body"))
		req.Header.Set("Upgrade", x.upgrade)
		req.Header.Set("Connection", "Upgrade")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(string(b), "Upgrade") {
			t.Fatalf("%s: %d, the app saw:\n%s", x.what, resp.StatusCode, b)
		}
	}
	// An app that does not take the handshake: its answer relayed as any, and the client's
	// connection serves the next request.
	nc2, err := net.Dial("tcp", rt.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	br2 := bufio.NewReader(nc2)
	for i, head := range []string{
		"GET / HTTP/1.1\r\nHost: plain.acme.apps.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: plain.acme.apps.test\r\n\r\n"} {
		io.WriteString(nc2, head)
		resp, err := http.ReadResponse(br2, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "plain" {
			t.Fatalf("request %d on the declined connection: %d %q", i, resp.StatusCode, b)
		}
	}
	t.Logf("router: %v", rt.Stats())
}
