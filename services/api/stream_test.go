package api_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"enjin/services/api"
)

// TestForwardedStreamsOutliveTimeouts serves the API with one-second read and write
// timeouts. Forwarded app requests lasting three seconds — a followed log, a slow upload
// with a progress stream, a wait for new instances — are not cut; a meta route answering
// after one and a half seconds is; and a forwarded upload that stalls is cut too.
func TestForwardedStreamsOutliveTimeouts(t *testing.T) {
	const timeout = time.Second
	e := newEnvWith(t, api.Timeouts{Read: timeout, Write: timeout})
	f, asAcme, _ := startRing1(t, e, func(w http.ResponseWriter, r *http.Request) {
		fl := w.(http.Flusher)
		switch {
		case strings.HasSuffix(r.URL.Path, "/logs"):
			w.Header().Set("Content-Type", "application/x-ndjson")
			for i := range 12 {
				fmt.Fprintf(w, "{\"line\":%d}\n", i)
				fl.Flush()
				time.Sleep(250 * time.Millisecond)
			}
		case strings.HasSuffix(r.URL.Path, "/releases"):
			w.WriteHeader(http.StatusCreated)
			for i := range 5 {
				fmt.Fprintf(w, "{\"progress\":%d}\n", i)
				fl.Flush()
				time.Sleep(300 * time.Millisecond)
			}
		default:
			time.Sleep(2500 * time.Millisecond)
			io.WriteString(w, `{"instances":3}`)
		}
	})
	c := e.client

	t.Run("followed log", func(t *testing.T) {
		start := time.Now()
		lines, err := stream(c, "GET", e.srv.URL+"/v1/tenants/acme/apps/web/logs?follow=1", asAcme, nil)
		if err != nil || lines != 12 {
			t.Fatalf("after %v: %d lines, %v; want 12 lines", time.Since(start), lines, err)
		}
		t.Logf("a followed log streamed for %v", time.Since(start).Round(time.Millisecond))
	})
	t.Run("slow deploy with progress", func(t *testing.T) {
		f.take()
		pr, pw := io.Pipe()
		go func() { // ends when the body is written
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for range 10 {
				pw.Write(chunk)
				time.Sleep(250 * time.Millisecond)
			}
			pw.Close()
		}()
		start := time.Now()
		lines, err := stream(c, "POST", e.srv.URL+"/v1/tenants/acme/apps/web/releases", asAdmin, pr)
		if err != nil || lines != 5 {
			t.Fatalf("after %v: %d progress lines, %v; want 5", time.Since(start), lines, err)
		}
		seen := f.take()
		if len(seen) != 1 || len(seen[0].body) != 10*64<<10 || seen[0].bodyErr != nil {
			t.Fatalf("ring 1 got %d requests, %d body bytes, %v", len(seen), len(seen[0].body), seen[0].bodyErr)
		}
		t.Logf("a 640 KiB upload and its progress took %v", time.Since(start).Round(time.Millisecond))
	})
	t.Run("wait for new instances", func(t *testing.T) {
		r := e.do(t, "PUT", "/v1/tenants/acme/apps/web/scale/web", []byte(`{"instances":3}`), "Authorization", asAdmin,
			"Content-Type", "application/json")
		if r.status != 200 || !strings.Contains(string(r.body), `"instances":3`) {
			t.Fatalf("got %d %s want 200 after 2.5 s", r.status, r.body)
		}
	})
	t.Run("a meta route keeps its timeout", func(t *testing.T) {
		e.ring0.slowOps.Store(int64(1500 * time.Millisecond))
		defer e.ring0.slowOps.Store(0)
		req, _ := http.NewRequest("POST", e.srv.URL+"/v1/creds/ops", strings.NewReader(`{"name":"slow"}`))
		req.Header.Set("Authorization", asAdmin)
		req.Header.Set("Content-Type", "application/json")
		res, err := c.Do(req)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			t.Fatalf("got %d %s after the write timeout; want the connection cut", res.StatusCode, b)
		}
		t.Logf("cut: %v", err)
	})
	t.Run("a stalled upload is cut", func(t *testing.T) {
		f.take()
		pr, pw := io.Pipe()
		defer pw.Close()
		go func() { // ends after the stall; the router cut the body by then
			pw.Write(bytes.Repeat([]byte("x"), 1000))
			time.Sleep(3 * time.Second)
			pw.CloseWithError(io.ErrUnexpectedEOF)
		}()
		start := time.Now()
		stream(c, "POST", e.srv.URL+"/v1/tenants/acme/apps/web/releases", asAdmin, pr)
		seen := f.wait(t, 1) // ring 1 may learn of the cut after the client does
		if seen[0].bodyErr == nil {
			t.Fatalf("ring 1 saw %+v; want a body cut short", seen)
		}
		if took := time.Since(start); took > 2800*time.Millisecond {
			t.Fatalf("the stall was cut after %v; want about %v", took, timeout)
		}
		t.Logf("a stalled upload was cut after %v: ring 1 read %d bytes, then %v",
			time.Since(start).Round(time.Millisecond), len(seen[0].body), seen[0].bodyErr)
	})
}

// stream sends a request and counts the lines of the answer, which must end cleanly.
func stream(c *http.Client, method, url, auth string, body io.Reader) (int, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", auth)
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		b, _ := io.ReadAll(res.Body)
		return 0, fmt.Errorf("%s: %s", res.Status, b)
	}
	n := 0
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		n++
	}
	return n, sc.Err()
}

// TestForwardedAnswerBeforeTheBodyEnds has ring 1 answer a deploy — header and a first
// event — after reading only the body's first kilobyte, and the client send the rest only
// once it has that event. The proxy must keep carrying the body while it streams the answer:
// ring 1 gets every byte and the stream ends with its last line, not cut.
func TestForwardedAnswerBeforeTheBodyEnds(t *testing.T) {
	e := newEnv(t)
	_, asAcme, _ := startRing1(t, e, nil)
	const size = 100 << 10
	ring1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex() // as ring 1's reading of a bundle may go on
		first := make([]byte, 1024)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, "{\"event\":\"unpacked\"}\n")
		w.(http.Flusher).Flush()
		rest, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "{\"event\":\"live\",\"bytes\":%d,\"err\":%q}\n", len(first)+len(rest), fmt.Sprint(err))
	}))
	t.Cleanup(ring1.Close)
	e.ring0.apps = ring1.URL

	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/tenants/acme/apps/web/releases", pr)
	req.ContentLength = size
	req.Header.Set("Authorization", asAcme)
	got, waited := make(chan string, 1), make(chan bool, 1)
	go func() { // the first kilobyte, then the rest once the first event is in (or 3 s)
		pw.Write(bytes.Repeat([]byte("x"), 1024))
		select {
		case <-got:
			waited <- false
		case <-time.After(3 * time.Second):
			waited <- true
		}
		pw.Write(bytes.Repeat([]byte("y"), size-1024))
		pw.Close()
	}()
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) == 1 {
			got <- lines[0]
		}
	}
	if <-waited {
		t.Fatalf("the first event did not come before the rest of the body: the proxy held the answer until it had read the body")
	}
	want := fmt.Sprintf("{\"event\":\"live\",\"bytes\":%d,\"err\":\"<nil>\"}", size)
	if res.StatusCode != 200 || len(lines) != 2 || lines[1] != want || sc.Err() != nil {
		t.Fatalf("got %d, lines %q, %v; want 200 and two lines ending %s", res.StatusCode, lines, sc.Err(), want)
	}
}
