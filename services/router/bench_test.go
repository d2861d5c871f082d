package router_test

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"enjin/services/router"
)

// BenchmarkProxy measures one keep-alive client connection sending GETs through the router
// to a net/http backend answering 100 bytes; allocs/op counts the router's and the
// backend's allocations together (the backend's are most of them).
func BenchmarkProxy(b *testing.B) {
	body := make([]byte, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(body) }))
	defer srv.Close()
	rt, err := router.New(router.Config{AppsDomain: domain})
	if err != nil {
		b.Fatal(err)
	}
	rt.SetRoute("acme", "web", []router.Backend{{ID: "b", Addr: srv.Listener.Addr().String()}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go rt.Serve(b.Context(), ln) // ends with the benchmark
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	req := []byte("GET / HTTP/1.1\r\nHost: web.acme.apps.test\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReader(nc)
	for b.Loop() {
		nc.Write(req)
		resp, _, err := readResponse(br, "GET")
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("got %v %v", resp, err)
		}
	}
}

// BenchmarkBuildHead measures the router's own work on one request head carrying spoofed
// forwarding fields: parsing it and writing the upstream head. It must not allocate.
func BenchmarkBuildHead(b *testing.B) {
	raw := []byte("GET /x?y=1 HTTP/1.1\r\nHost: web.acme.apps.test\r\nUser-Agent: bench\r\nAccept: */*\r\n" +
		"X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6;proto=https\r\nX-Real-IP: 6.6.6.6\r\n\r\n")
	h := router.NewHeadBuilder("127.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		if status, _ := h.Build(raw); status != 0 {
			b.Fatalf("refused: %d", status)
		}
	}
}
