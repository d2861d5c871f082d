package router_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"enjin/services/router"
)

// drainable is a backend that notices a request arriving after it was declared drained.
type drainable struct {
	id      string
	srv     *httptest.Server
	drained atomic.Bool
	late    *atomic.Int64 // requests that arrived after drained was set, for all backends
	served  atomic.Int64
}

func startDrainable(t *testing.T, id string, late *atomic.Int64) *drainable {
	d := &drainable{id: id, late: late}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.drained.Load() {
			d.late.Add(1)
		}
		d.served.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/slow" {
			time.Sleep(20 * time.Millisecond)
		}
		w.Header().Set("X-Backend", id)
		w.Write(body)
		io.WriteString(w, id)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// TestZeroDowntime swaps an app's backend set 20 times under steady load. Each replaced set
// is drained (Inflight reaches 0) and then closed, as a deploy would stop an old release. No
// request may fail, and no request may reach a backend after it was seen drained.
func TestZeroDowntime(t *testing.T) {
	rt := startRouter(t, router.Config{})
	var late atomic.Int64
	newSet := func(gen int) []*drainable {
		return []*drainable{startDrainable(t, fmt.Sprintf("g%d-a", gen), &late), startDrainable(t, fmt.Sprintf("g%d-b", gen), &late)}
	}
	backends := func(set []*drainable) []router.Backend {
		var bs []router.Backend
		for _, d := range set {
			bs = append(bs, router.Backend{ID: d.id, Addr: d.srv.Listener.Addr().String()})
		}
		return bs
	}
	cur := newSet(0)
	rt.SetRoute("acme", "web", backends(cur))

	var ok, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var load sync.WaitGroup
	c := client(rt)
	for w := range 8 {
		load.Go(func() { // ends when stop is closed
			body := bytes.Repeat([]byte("x"), 1000)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var resp *http.Response
				var err error
				switch (w + i) % 3 {
				case 0:
					resp, err = c.Get("http://web.acme.apps.test/")
				case 1:
					resp, err = c.Get("http://web.acme.apps.test/slow")
				default:
					resp, err = c.Post("http://web.acme.apps.test/", "text/plain", bytes.NewReader(body))
				}
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					failMu.Lock()
					failures = append(failures, err.Error())
					failMu.Unlock()
					continue
				}
				ok.Add(1)
			}
		})
	}

	start := time.Now()
	var drains sync.WaitGroup
	var all []*drainable
	for gen := 1; gen <= 20; gen++ {
		time.Sleep(150 * time.Millisecond)
		old := cur
		cur = newSet(gen)
		rt.SetRoute("acme", "web", backends(cur))
		all = append(all, old...)
		for _, d := range old {
			drains.Go(func() { // ends when d is drained and closed
				waitFor(t, d.id+" to drain", func() bool { return rt.Inflight(d.id) == 0 })
				d.drained.Store(true)
				d.srv.Close()
			})
		}
	}
	time.Sleep(150 * time.Millisecond)
	close(stop)
	load.Wait()
	drains.Wait()
	elapsed := time.Since(start)

	all = append(all, cur...)
	served := map[string]int64{}
	for _, d := range all {
		served[d.id] = d.served.Load()
	}
	rate := float64(ok.Load()+failed.Load()) / elapsed.Seconds()
	t.Logf("%d requests in %v (%.0f/s) across 20 swaps: %d ok, %d failed, %d reached a drained backend",
		ok.Load()+failed.Load(), elapsed.Round(time.Millisecond), rate, ok.Load(), failed.Load(), late.Load())
	t.Logf("served per backend: %v", served)
	t.Logf("stats: %v", rt.Stats())
	if failed.Load() != 0 {
		t.Errorf("got %d failed requests want 0; first: %v", failed.Load(), failures[:min(5, len(failures))])
	}
	if late.Load() != 0 {
		t.Errorf("got %d requests to drained backends want 0", late.Load())
	}
	if rate < 100 {
		t.Errorf("got %.0f requests/s want at least 100", rate)
	}
	for _, d := range all[:len(all)-2] {
		if n := rt.Inflight(d.id); n != 0 {
			t.Errorf("Inflight(%s) = %d after draining want 0", d.id, n)
		}
	}
}
