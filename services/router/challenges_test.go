package router_test

import (
	"io"
	"net/http"
	"testing"

	"enjin/services/router"
)

// TestACMEChallenges answers ACME HTTP-01 challenges in the router itself: the key
// authorization of a token pending for that domain, 404 for any other path under
// /.well-known/acme-challenge/ of such a domain (another domain's token, a token no app may
// stand in for), and no request for them reaches an app; a domain with none pending, or the
// same path over TLS, goes to its app as before.
func TestACMEChallenges(t *testing.T) {
	ca := newTestCA(t)
	web, site := startBackend(t, "web"), startBackend(t, "site")
	rt := startRouter(t, router.Config{Logger: testLogger(t)})
	rt.SetRoute("acme", "web", []router.Backend{web.Backend()})
	rt.SetRoute("evil", "site", []router.Backend{site.Backend()})
	if err := rt.SetDomains([]router.Domain{
		{Name: "www.example.test", Tenant: "acme", App: "web", Cert: ca.issue(t, "www.example.test")},
		{Name: "blog.example.test", Tenant: "acme", App: "web", Redirect: true},
		{Name: "evil.example.test", Tenant: "evil", App: "site"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := rt.SetChallenges([]router.Challenge{
		{Domain: "WWW.example.test.", Token: "tok-www_1", KeyAuth: "tok-www_1.thumb"},
		{Domain: "blog.example.test", Token: "tok-blog", KeyAuth: "tok-blog.thumb"},
		{Domain: "new.example.test", Token: "tok-new", KeyAuth: "tok-new.thumb"}, // no domain routed yet
	}); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, rt)
	c := client(rt)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tc := range []struct {
		url, backend, body string
		status             int
	}{
		{"http://www.example.test/.well-known/acme-challenge/tok-www_1", "", "tok-www_1.thumb", 200},
		{"http://www.example.test:80/.well-known/acme-challenge/tok-www_1", "", "tok-www_1.thumb", 200},
		{"http://blog.example.test/.well-known/acme-challenge/tok-blog", "", "tok-blog.thumb", 200}, // answered, not redirected
		{"http://new.example.test/.well-known/acme-challenge/tok-new", "", "tok-new.thumb", 200},
		{"http://www.example.test/.well-known/acme-challenge/tok-new", "", "no such ACME challenge\n", 404}, // another domain's token
		{"http://www.example.test/.well-known/acme-challenge/tok-www_1?x", "", "no such ACME challenge\n", 404},
		{"http://www.example.test/.well-known/acme-challenge/anything", "", "no such ACME challenge\n", 404}, // never the app's to answer
		{"http://www.example.test/", "web", "web", 200},
		{"http://evil.example.test/.well-known/acme-challenge/tok-www_1", "site", "site", 200}, // its own domain, nothing pending
		{"http://site.evil." + domain + "/.well-known/acme-challenge/tok-www_1", "site", "site", 200},
	} {
		resp, err := c.Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(b) != tc.body || resp.Header.Get("X-Backend") != tc.backend {
			t.Errorf("GET %s: got %d %q from %q; want %d %q from %q", tc.url, resp.StatusCode, b, resp.Header.Get("X-Backend"), tc.status, tc.body, tc.backend)
		}
	}

	t.Run("not over tls", func(t *testing.T) {
		resp, err := tlsClient(addr, "www.example.test", ca).Get("https://www.example.test/.well-known/acme-challenge/tok-www_1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Backend") != "web" {
			t.Errorf("a challenge path over TLS: got %d from %q; want the app's", resp.StatusCode, resp.Header.Get("X-Backend"))
		}
	})
	t.Run("refused", func(t *testing.T) {
		for _, ch := range []router.Challenge{
			{Domain: "web.acme." + domain, Token: "t", KeyAuth: "t.x"},
			{Domain: "www.example.test", Token: "../x", KeyAuth: "x"},
			{Domain: "www.example.test", Token: "", KeyAuth: "x"},
			{Domain: "bad host", Token: "t", KeyAuth: "t.x"},
		} {
			if err := rt.SetChallenges([]router.Challenge{ch}); err == nil {
				t.Errorf("SetChallenges(%+v) accepted", ch)
			}
		}
	})
	t.Run("cleared", func(t *testing.T) {
		if err := rt.SetChallenges(nil); err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get("http://www.example.test/.well-known/acme-challenge/tok-www_1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Backend") != "web" {
			t.Errorf("no challenge pending: got %d from %q; want the app's", resp.StatusCode, resp.Header.Get("X-Backend"))
		}
	})
}
