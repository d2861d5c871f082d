package router_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"enjin/services/router"
)

var hostileSeed = flag.Uint64("hostile.seed", 0, "seed of TestHostileHTTP (0: from the clock)")

// hostileCount is how many malformed requests TestHostileHTTP sends, besides slow clients.
const hostileCount = 12000

// hostile is one malformed request and the status it must get; 0 accepts any status that is
// not 5xx, or no answer at all.
type hostile struct {
	kind string
	raw  string
	want int
}

const okHost = "web.acme.apps.test"

// hostileKinds build one malformed request each, from r. Requests with bodies go to /echo,
// whose backend reads the whole body before answering, so that body errors are the
// router's to report.
var hostileKinds = []func(r *rand.Rand) hostile{
	func(r *rand.Rand) hostile {
		return hostile{"oversized header", "GET / HTTP/1.1\r\nHost: " + okHost + "\r\nX-Big: " + strings.Repeat("a", 8<<10+r.IntN(8<<10)) + "\r\n\r\n", 431}
	},
	func(r *rand.Rand) hostile {
		return hostile{"many headers", "GET / HTTP/1.1\r\nHost: " + okHost + "\r\n" + strings.Repeat("X-A: b\r\n", 1200+r.IntN(500)) + "\r\n", 431}
	},
	func(r *rand.Rand) hostile {
		return hostile{"huge request line", "GET /" + strings.Repeat("p", 9<<10+r.IntN(1<<10)) + " HTTP/1.1\r\nHost: " + okHost + "\r\n\r\n", 431}
	},
	func(r *rand.Rand) hostile {
		te := pick(r, "chunked", "Chunked", " chunked")
		order := []string{"Content-Length: 5\r\n", "Transfer-Encoding: " + te + "\r\n"}
		if r.IntN(2) == 0 {
			order[0], order[1] = order[1], order[0]
		}
		return hostile{"CL+TE", "POST /echo HTTP/1.1\r\nHost: " + okHost + "\r\n" + order[0] + order[1] + "\r\n5\r\nhello\r\n0\r\n\r\n", 400}
	},
	func(r *rand.Rand) hostile {
		cl := pick(r, "Content-Length: 5\r\nContent-Length: 5\r\n", "Content-Length: 5\r\nContent-Length: 6\r\n", "Content-Length: 5, 5\r\n",
			"Content-Length: +5\r\n", "Content-Length: -1\r\n", "Content-Length: 0x5\r\n", "Content-Length: 5e0\r\n", "Content-Length: 99999999999999999999\r\n", "Content-Length:\r\n")
		return hostile{"bad Content-Length", "POST /echo HTTP/1.1\r\nHost: " + okHost + "\r\n" + cl + "\r\nhello!", 400}
	},
	func(r *rand.Rand) hostile {
		te := pick(r, "gzip", "chunked, chunked", "gzip, chunked", "identity", "chunked\r\nTransfer-Encoding: chunked", "xchunked", "chunked\x0b")
		return hostile{"bad Transfer-Encoding", "POST /echo HTTP/1.1\r\nHost: " + okHost + "\r\nTransfer-Encoding: " + te + "\r\n\r\n0\r\n\r\n", 400}
	},
	func(r *rand.Rand) hostile {
		size := pick(r, "zz", "-1", "0x5", " 5", "5 ", "+5", "", "fffffffffffffffff", "5;\x00", "5\n", "5\r\r\n", "5;a\rb", "5 x")
		return hostile{"bad chunk size", "POST /echo HTTP/1.1\r\nHost: " + okHost + "\r\nTransfer-Encoding: chunked\r\n\r\n" + size + "\r\nhello\r\n0\r\n\r\n", 400}
	},
	func(r *rand.Rand) hostile {
		tail := pick(r, "5\r\nhelloX\r\n0\r\n\r\n", "5\r\nhello\n0\r\n\r\n", "5\r\nhello\r\n0\r\nX-T: a\n\r\n", "5\r\nhello\r\n0\r\nbad trailer\r\n\r\n")
		return hostile{"bad chunk framing", "POST /echo HTTP/1.1\r\nHost: " + okHost + "\r\nTransfer-Encoding: chunked\r\n\r\n" + tail, 400}
	},
	func(r *rand.Rand) hostile {
		h := pick(r, "Host: a b\r\n", "Host: \r\n", "Host: web.acme.apps.test/x\r\n", "Host: user@web.acme.apps.test\r\n",
			"Host: [::1\r\n", "Host: x:99999999\r\n", "Host: x:abc\r\n", "Host: ..\r\n", "Host: a..b\r\n",
			"Host: "+okHost+"\r\nHost: "+okHost+"\r\n", "", "Host: "+okHost+"\r\nhost: other\r\n", "Host: a\x80b\r\n")
		return hostile{"bad Host", "GET / HTTP/1.1\r\n" + h + "\r\n", 400}
	},
	func(r *rand.Rand) hostile {
		i := r.IntN(3)
		req := []string{"GET /\x00 HTTP/1.1\r\nHost: " + okHost + "\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: " + okHost + "\r\nX-A: a\x00b\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: " + okHost + "\r\nX-\x00: b\r\n\r\n"}[i]
		return hostile{"NUL byte", req, 400}
	},
	func(r *rand.Rand) hostile {
		line := pick(r, "NoColonHere", ": empty name", "X-A : space before colon", " X-A: leading space", "\tobs: fold", "X A: b", "X-A:\x01b", "X-A: a\rb")
		return hostile{"bad field", "GET / HTTP/1.1\r\nHost: " + okHost + "\r\n" + line + "\r\n\r\n", 400}
	},
	func(r *rand.Rand) hostile {
		return hostile{"obs-fold", "GET / HTTP/1.1\r\nHost: " + okHost + "\r\nX-A: a\r\n" + pick(r, " b", "\tb") + "\r\n\r\n", 400}
	},
	func(r *rand.Rand) hostile {
		req := pick(r, "GET /\r\n\r\n", "GET / HTTP/0.9\r\n\r\n", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
			"GET / http/1.1\r\nHost: x\r\n\r\n", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
			"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "GET\r\n\r\n", "/ HTTP/1.1\r\n\r\n",
			"GET x HTTP/1.1\r\nHost: x\r\n\r\n", "GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n", "CONNECT x:80 HTTP/1.1\r\nHost: x\r\n\r\n")
		want := 400
		if strings.HasPrefix(req, "CONNECT") {
			want = 405
		}
		return hostile{"bad request line", req, want}
	},
	func(r *rand.Rand) hostile {
		lf := pick(r, "GET / HTTP/1.1\nHost: "+okHost+"\r\n\r\n", "GET / HTTP/1.1\r\nHost: "+okHost+"\n\r\n", "GET / HTTP/1.1\r\nHost: "+okHost+"\r\n\n")
		return hostile{"bare LF", lf, 400}
	},
	func(r *rand.Rand) hostile {
		return hostile{"TE in HTTP/1.0", "POST /echo HTTP/1.0\r\nHost: " + okHost + "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400}
	},
	func(r *rand.Rand) hostile {
		garbage := make([]byte, 1+r.IntN(200))
		for i := range garbage {
			garbage[i] = byte(r.IntN(256))
		}
		return hostile{"pipelined garbage", "GET / HTTP/1.1\r\nHost: " + okHost + "\r\n\r\n" + string(garbage) + "\r\n\r\n", 200}
	},
	func(r *rand.Rand) hostile {
		b := make([]byte, 1+r.IntN(300))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return hostile{"random bytes", string(b), 0}
	},
	func(r *rand.Rand) hostile { return hostile{"mutated", mutate(r), 0} },
}

func pick(r *rand.Rand, s ...string) string { return s[r.IntN(len(s))] }

// mutate returns a valid request with a few random bytes changed, inserted or removed.
func mutate(r *rand.Rand) string {
	b := []byte("POST /echo?q=1 HTTP/1.1\r\nHost: " + okHost + "\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello")
	for range 1 + r.IntN(3) {
		i := r.IntN(len(b))
		switch r.IntN(3) {
		case 0:
			b[i] = byte(r.IntN(256))
		case 1:
			b = slices.Insert(b, i, byte(r.IntN(256)))
		default:
			b = slices.Delete(b, i, i+1)
		}
	}
	return string(b)
}

// TestHostileHTTP sends malformed requests over raw TCP and slow clients that stall mid-head,
// and checks the status each gets, that nothing panics and that nothing answers 5xx.
func TestHostileHTTP(t *testing.T) {
	rt := startRouter(t, router.Config{MaxHeaderBytes: 8 << 10, ReadHeaderTimeout: 300 * time.Millisecond})
	rt.SetRoute("acme", "web", []router.Backend{startBackend(t, "web-1").Backend()})
	addr := rt.Addr().String()
	seed := *hostileSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -hostile.seed=%d)", seed, seed)

	var mu sync.Mutex
	counts := map[string]map[int]int{}
	var failures []string
	record := func(h hostile, got int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if counts[h.kind] == nil {
			counts[h.kind] = map[int]int{}
		}
		counts[h.kind][got]++
		bad := got >= 500 || h.want != 0 && got != h.want || err != nil && h.want != 0
		if bad && len(failures) < 20 {
			failures = append(failures, fmt.Sprintf("%s %q: got %d (%v) want %d", h.kind, trunc(h.raw, 120), got, err, h.want))
		}
	}
	jobs := make(chan hostile)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { // ends when jobs is closed
			for h := range jobs {
				got, _, err := rawExchange(addr, []byte(h.raw), 5*time.Second)
				record(h, got, err)
			}
		})
	}
	for range 40 { // slow clients: a few bytes of head, then silence
		wg.Go(func() { // ends after its 10 slow clients
			for range 10 {
				h := hostile{kind: "slow client", want: 408}
				got, err := slowClient(addr, 3*time.Second)
				record(h, got, err)
			}
		})
	}
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range hostileCount {
		jobs <- hostileKinds[i%len(hostileKinds)](r)
	}
	close(jobs)
	wg.Wait()

	total := 0
	for _, kind := range slices.Sorted(func(yield func(string) bool) {
		for k := range counts {
			if !yield(k) {
				return
			}
		}
	}) {
		var parts []string
		for _, st := range slices.Sorted(func(yield func(int) bool) {
			for s := range counts[kind] {
				if !yield(s) {
					return
				}
			}
		}) {
			parts = append(parts, fmt.Sprintf("%d×%d", counts[kind][st], st))
			total += counts[kind][st]
		}
		t.Logf("%-22s %s", kind, strings.Join(parts, " "))
	}
	s := rt.Stats()
	t.Logf("%d hostile requests; router stats: %v", total, s)
	for _, f := range failures {
		t.Error(f)
	}
	if s.Panics != 0 || s.ByClass[5] != 0 {
		t.Errorf("got %d panics and %d 5xx answers want 0", s.Panics, s.ByClass[5])
	}
	if status, body := get(t, client(rt), "http://"+okHost+"/"); status != 200 || body != "web-1" {
		t.Errorf("after the hostile requests: got %d %q want 200 web-1", status, body)
	}
}

// slowClient sends part of a head and stalls; it returns the status the router answered.
func slowClient(addr string, bound time.Duration) (int, error) {
	c, err := net.DialTimeout("tcp", addr, bound)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(bound))
	c.Write([]byte("GET / HTTP/1.1\r\nHost: " + okHost + "\r\nX-Slow: "))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if n == 0 {
		return 0, err
	}
	return statusOf(buf[:n]), nil
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
