package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var hostileSeed = flag.Uint64("hostile.seed", 0, "seed of TestHostileInput (0: from the clock)")

// hostileCount is how many malformed requests TestHostileInput sends through the client,
// besides the raw ones it writes straight to the socket.
const hostileCount = 10000

// TestHostileInput sends malformed requests over TCP — random bodies, deep nesting, bodies
// over the limit, bad UTF-8, random methods, paths, queries, credentials and If-Match — and
// checks that nothing panics, nothing answers 5xx and every answer is JSON.
func TestHostileInput(t *testing.T) {
	e := newEnv(t)
	ids := seedHostile(t, e)
	seed := *hostileSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -hostile.seed=%d)", seed, seed)

	var (
		mu       sync.Mutex
		counts   = map[string]int{}
		failures []string
	)
	record := func(what string, key string, fail string) {
		mu.Lock()
		defer mu.Unlock()
		counts[key]++
		if fail != "" && len(failures) < 20 {
			failures = append(failures, what+": "+fail)
		}
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() { // ends when jobs is closed
			g := &gen{r: rand.New(rand.NewPCG(seed, uint64(w))), ids: ids}
			for i := range jobs {
				h := g.request(i)
				key, fail := send(t.Context(), e, h)
				record(h.String(), key, fail)
			}
		})
	}
	for i := range hostileCount {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	g := &gen{r: rand.New(rand.NewPCG(seed, 99)), ids: ids}
	for range 500 {
		raw := g.raw()
		key, fail := sendRaw(e.srv.Listener.Addr().String(), raw)
		record(fmt.Sprintf("raw %q", trunc(raw, 80)), "raw "+key, fail)
	}

	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range counts {
			if !yield(k) {
				return
			}
		}
	})
	var b strings.Builder
	total := 0
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-22s %6d\n", k, counts[k])
		total += counts[k]
	}
	t.Logf("%d hostile requests, %d panics recovered; answers by status:\n%s", total, e.panics.Load(), b.String())
	if n := e.panics.Load(); n != 0 {
		t.Errorf("%d panics recovered, want 0", n)
	}
	for _, f := range failures {
		t.Error(f)
	}
}

// seedHostile makes objects for the hostile requests to aim at. Compartment c1 is only ever
// a parent and c2 only ever written; tier t1 takes member puts, removals, promotions and
// deletion, all racing each other.
func seedHostile(t *testing.T, e *env) map[string]string {
	ids := map[string]string{}
	post := func(path, body string, save ...string) {
		r := e.do(t, "POST", path, []byte(body), "Authorization", asAdmin)
		if r.status != http.StatusCreated {
			t.Fatalf("seed %s: %d %s", path, r.status, r.body)
		}
		for _, s := range save {
			ids[s] = str(r.json, "id")
		}
	}
	post("/v1/compartments", `{"ring":1,"type":"row","label":"c1"}`, "c1")
	post("/v1/compartments", `{"ring":1,"type":"rack","label":"c2"}`, "c2")
	for _, n := range []string{"n1", "n2", "n3"} {
		post("/v1/nodes", `{"id":"`+n+`","ring":1,"supervision_strategy":"external","observation_strategy":"self","compartment":"`+ids["c1"]+`"}`)
	}
	post("/v1/tiers", `{"ring":1,"label":"t1","replicas":1}`, "t1")
	post("/v1/tiers", `{"ring":1,"label":"t2","replicas":1}`, "t2")
	for _, tier := range []string{"t1", "t2"} {
		for n, role := range map[string]string{"n1": "primary", "n2": "replica", "n3": "replica"} {
			r := e.do(t, "PUT", "/v1/tiers/"+ids[tier]+"/members/"+n, []byte(`{"role":"`+role+`"}`), "Authorization", asAdmin)
			if r.status != http.StatusOK {
				t.Fatalf("seed member: %d %s", r.status, r.body)
			}
		}
	}
	return ids
}

// hostile is one request to send.
type hostile struct {
	kind    string
	method  string
	path    string // escaped, with any query
	hdr     [][2]string
	body    []byte
	chunked bool // send without a length
}

func (h hostile) String() string {
	return fmt.Sprintf("%s: %s %s (%d bytes, headers %q)", h.kind, h.method, trunc(h.path, 100), len(h.body), h.hdr)
}

// send sends h and reports its status and, if the answer breaks the rules, why.
func send(ctx context.Context, e *env, h hostile) (status, fail string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var body io.Reader = bytes.NewReader(h.body)
	if h.chunked {
		body = io.MultiReader(bytes.NewReader(h.body)) // hides the length
	}
	req, err := http.NewRequestWithContext(ctx, h.method, e.srv.URL+h.path, body)
	if err != nil {
		return "unsendable", "" // the client refuses to send it; not the server's concern
	}
	for _, kv := range h.hdr {
		req.Header.Add(kv[0], kv[1])
	}
	res, err := e.client.Do(req)
	if err != nil {
		return "transport error", err.Error()
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "transport error", "read body: " + err.Error()
	}
	return fmt.Sprint(res.StatusCode), judge(h.method, res, b)
}

// judge says what is wrong with an answer: a 5xx, or anything but a JSON error body.
func judge(method string, res *http.Response, b []byte) string {
	switch {
	case res.StatusCode >= 500:
		return fmt.Sprintf("status %d: %s", res.StatusCode, b)
	case res.StatusCode == http.StatusNoContent || method == http.MethodHead:
		return ""
	case res.Header.Get("Content-Type") != "application/json" || !json.Valid(b):
		return fmt.Sprintf("status %d, %s body %q", res.StatusCode, res.Header.Get("Content-Type"), trunc(string(b), 200))
	}
	var e struct{ Error, Code string }
	if res.StatusCode >= 400 && (json.Unmarshal(b, &e) != nil || e.Error == "" || e.Code == "") {
		return fmt.Sprintf("status %d without error and code: %s", res.StatusCode, b)
	}
	return ""
}

// sendRaw writes raw to a fresh connection and reads one answer. Requests so malformed that
// net/http rejects them itself are answered by net/http, not the API, so only the status
// is judged.
func sendRaw(addr, raw string) (status, fail string) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "dial error", err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return "closed", ""
	}
	_ = c.(*net.TCPConn).CloseWrite() // so a request cut short ends now, not at the read timeout
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "closed", ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 500 {
		return fmt.Sprint(res.StatusCode), fmt.Sprintf("status %d: %s", res.StatusCode, b)
	}
	return fmt.Sprint(res.StatusCode), ""
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
