package api_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
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
