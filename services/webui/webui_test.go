package webui

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"enjin/test/harness"
)

// newTestUI is a web view whose Authenticate takes one admin token and refuses the rest, and
// whose digests are what the test sets.
func newTestUI(t *testing.T, digests func() map[string]string, polls *atomic.Int64) *UI {
	t.Helper()
	u, err := New(Config{
		Authenticate: func(_ context.Context, user, secret string) (Identity, error) {
			if user == "" && secret == "admin-token-0123456789" {
				return Identity{Name: "admin", Admin: true}, nil
			}
			return Identity{}, ErrRefused
		},
		Digests: func(context.Context) (map[string]string, error) {
			polls.Add(1)
			return digests(), nil
		},
		Poll: 20 * time.Millisecond, Ping: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

func (u *UI) testLogin(t *testing.T) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/ui/login", strings.NewReader(url.Values{"token": {"admin-token-0123456789"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	u.Login(rec, r)
	cs := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cs) != 1 {
		t.Fatalf("login: %d %v", rec.Code, rec.Header())
	}
	return cs[0]
}

// TestSessionExpires: a session reads until its lifetime is over, and then no more; its
// event stream says logout and ends.
func TestSessionExpires(t *testing.T) {
	var polls atomic.Int64
	u := newTestUI(t, func() map[string]string { return map[string]string{"nodes": "1"} }, &polls)
	var mu sync.Mutex
	now := time.Now()
	u.sessions.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := u.testLogin(t)
	r := httptest.NewRequest("GET", "/ui", nil)
	r.AddCookie(c)
	if id, ok := u.Session(r); !ok || id.Name != "admin" {
		t.Fatalf("a new session: %v %v", id, ok)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = u.Events(w, r) }))
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL, nil)
	req.AddCookie(c)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Security-Policy") != CSP {
		t.Fatalf("events without the CSP: %v", res.Header)
	}
	mu.Lock()
	now = now.Add(12*time.Hour + time.Second)
	mu.Unlock()
	if _, ok := u.Session(r); ok {
		t.Fatal("a session 12 h old still reads")
	}
	var got []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() { // ends when the stream does
		if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			got = append(got, ev)
		}
	}
	if len(got) < 3 || got[len(got)-1] != "logout" {
		t.Fatalf("events %v: want apps and nodes, then logout at the end", got)
	}
}

// TestPollOnlyWhileWatched: the inventory is polled only while a stream is open, and Close
// ends the streams still open.
func TestPollOnlyWhileWatched(t *testing.T) {
	var polls atomic.Int64
	var n atomic.Int64
	u := newTestUI(t, func() map[string]string { return map[string]string{"nodes": string(rune('a' + n.Load()%26))} }, &polls)
	time.Sleep(100 * time.Millisecond) // nobody watches: nothing may poll meanwhile
	if p := polls.Load(); p != 0 {
		t.Fatalf("%d polls with nobody watching", p)
	}
	c := u.testLogin(t)
	ctx, cancel := context.WithCancel(t.Context())
	r := httptest.NewRequestWithContext(ctx, "GET", "/ui/events", nil)
	r.AddCookie(c)
	rec := &syncRecorder{ResponseRecorder: httptest.NewRecorder()}
	done := make(chan struct{})
	go func() { _ = u.Events(rec, r); close(done) }() // ends with ctx
	harness.Eventually(t, 5*time.Second, func() bool { return polls.Load() >= 2 }, "polls while watched")
	n.Add(1)
	harness.Eventually(t, 5*time.Second, func() bool { return strings.Count(rec.body(), "event: nodes") >= 2 }, "a nodes event after the change")
	cancel()
	<-done
	harness.Eventually(t, 5*time.Second, func() bool {
		u.hub.mu.Lock()
		defer u.hub.mu.Unlock()
		return !u.hub.polling
	}, "the poll to stop once nobody watches")

	// Close ends an open stream.
	r = httptest.NewRequest("GET", "/ui/events", nil)
	r.AddCookie(c)
	done = make(chan struct{})
	go func() { _ = u.Events(&syncRecorder{ResponseRecorder: httptest.NewRecorder()}, r); close(done) }() // ends at Close
	harness.Eventually(t, 5*time.Second, func() bool { u.hub.mu.Lock(); defer u.hub.mu.Unlock(); return len(u.hub.subs) == 1 }, "the stream to join")
	u.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close left a stream open")
	}
}

// TestStaticAndOrigin: only the page's own files are served, never the templates or
// anything outside them; a login over TLS gets a Secure cookie; a cross-site login post is
// refused.
func TestStaticAndOrigin(t *testing.T) {
	var polls atomic.Int64
	u := newTestUI(t, func() map[string]string { return nil }, &polls)
	for name, want := range map[string]bool{"app.js": true, "style.css": true, "login.html": false, "index.html": false, "../webui.go": false, "": false} {
		rec := httptest.NewRecorder()
		ok := u.Static(rec, httptest.NewRequest("GET", "/ui/static/x", nil), name)
		if ok != want || ok && (rec.Header().Get("Content-Security-Policy") != CSP || rec.Header().Get("X-Content-Type-Options") != "nosniff") {
			t.Errorf("Static(%q) = %v %v, want %v with the CSP", name, ok, rec.Header(), want)
		}
	}
	// Over TLS the cookie is Secure too.
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "https://example.com/ui/login", strings.NewReader("token=admin-token-0123456789"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", "https://example.com")
	u.Login(rec, r)
	if cs := rec.Result().Cookies(); rec.Code != http.StatusSeeOther || len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("login over TLS: %d %v, want a Secure, HttpOnly, SameSite=Strict cookie", rec.Code, rec.Result().Cookies())
	}
	for _, h := range [][2]string{{"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-site"}, {"Origin", "http://evil.example"}, {"Origin", "null"}} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/ui/login", strings.NewReader("token=admin-token-0123456789"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set(h[0], h[1])
		u.Login(rec, r)
		if rec.Code != http.StatusForbidden || len(rec.Result().Cookies()) != 0 {
			t.Errorf("login with %s: %s: %d %v, want 403 and no session", h[0], h[1], rec.Code, rec.Result().Cookies())
		}
	}
}

// syncRecorder is a ResponseRecorder safe to read while a handler writes, and flushable.
type syncRecorder struct {
	*httptest.ResponseRecorder
	mu sync.Mutex
}

func (s *syncRecorder) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ResponseRecorder.Write(b)
}

func (s *syncRecorder) Flush() {}

func (s *syncRecorder) body() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ResponseRecorder.Body.String()
}
