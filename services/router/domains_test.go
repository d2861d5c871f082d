package router_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"enjin/services/router"
)

// testCA is a throwaway certificate authority for TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a certificate for names signed by ca.
func (ca *testCA) issue(t *testing.T, names ...string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serveTLS serves rt's TLS listener on a loopback port until the test ends.
func serveTLS(t *testing.T, rt *router.Router) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.ServeTLS(ctx, ln) }() // ends at cleanup
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return ln.Addr().String()
}

// tlsClient sends every request to addr over TLS with server name sni, trusting only ca.
func tlsClient(addr, sni string, ca *testCA) *http.Client {
	d := net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "tcp", addr)
			},
			TLSClientConfig: &tls.Config{ServerName: sni, RootCAs: ca.pool},
		},
	}
}

// TestCustomDomains routes custom domains over TLS and plain HTTP with real handshakes: SNI
// picks the domain's certificate, an unknown name fails the handshake, a request naming
// another host than the handshake gets 421, a redirecting domain answers plain HTTP with 308
// to https, and app.tenant names stay routed as before.
func TestCustomDomains(t *testing.T) {
	ca := newTestCA(t)
	web, blog := startBackend(t, "web"), startBackend(t, "blog")
	rt := startRouter(t, router.Config{Logger: testLogger(t)})
	rt.SetRoute("acme", "web", []router.Backend{web.Backend()})
	rt.SetRoute("acme", "blog", []router.Backend{blog.Backend()})
	wwwCert, blogCert := ca.issue(t, "www.example.test"), ca.issue(t, "blog.example.test")
	if err := rt.SetDomains([]router.Domain{
		{Name: "WWW.Example.Test.", Tenant: "acme", App: "web", Cert: wwwCert},
		{Name: "blog.example.test", Tenant: "acme", App: "blog", Cert: blogCert, Redirect: true},
	}); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, rt)

	t.Run("sni picks the certificate", func(t *testing.T) {
		for _, tc := range []struct{ name, backend string }{{"www.example.test", "web"}, {"blog.example.test", "blog"}} {
			c := tlsClient(addr, tc.name, ca)
			resp, err := c.Get("https://" + tc.name + "/headers")
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := resp.TLS.PeerCertificates[0].DNSNames[0]; got != tc.name || resp.StatusCode != 200 || resp.Header.Get("X-Backend") != tc.backend {
				t.Errorf("%s: got cert %s, %d from %s; want its own cert, 200 from %s", tc.name, got, resp.StatusCode, resp.Header.Get("X-Backend"), tc.backend)
			}
			if !strings.Contains(string(body), "X-Forwarded-Proto: https") || !strings.Contains(string(body), "proto=https") {
				t.Errorf("%s: forwarding fields say no https:\n%s", tc.name, body)
			}
		}
	})
	t.Run("unknown sni fails the handshake", func(t *testing.T) {
		for _, sni := range []string{"other.example.test", "web.acme." + domain, ""} {
			conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
			if err == nil {
				conn.Close()
				t.Errorf("SNI %q: handshake succeeded; want it refused", sni)
			}
		}
	})
	t.Run("host other than sni gets 421", func(t *testing.T) {
		c := tlsClient(addr, "www.example.test", ca)
		for _, host := range []string{"blog.example.test", "web.acme." + domain, "nosuch.example.test"} {
			req, _ := http.NewRequest("GET", "https://www.example.test/", nil)
			req.Host = host
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 421 {
				t.Errorf("Host %s over SNI www.example.test: got %d, want 421", host, resp.StatusCode)
			}
		}
	})
	t.Run("plain http", func(t *testing.T) {
		c := client(rt)
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		for _, tc := range []struct {
			url, backend string
			status       int
			location     string
		}{
			{"http://www.example.test/x", "web", 200, ""},
			{"http://web.acme." + domain + "/", "web", 200, ""},
			{"http://blog.example.test:8080/a/b?c=d", "", 308, "https://blog.example.test/a/b?c=d"},
			{"http://blog.example.test", "", 308, "https://blog.example.test/"},
			{"http://other.example.test/", "", 404, ""},
		} {
			resp, err := c.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("X-Backend") != tc.backend || resp.Header.Get("Location") != tc.location {
				t.Errorf("%s: got %d from %q to %q; want %d from %q to %q", tc.url, resp.StatusCode, resp.Header.Get("X-Backend"),
					resp.Header.Get("Location"), tc.status, tc.backend, tc.location)
			}
		}
	})
	t.Run("domains replaced", func(t *testing.T) {
		if err := rt.SetDomains([]router.Domain{{Name: "www.example.test", Tenant: "acme", App: "blog", Cert: wwwCert}}); err != nil {
			t.Fatal(err)
		}
		if _, err := tlsClient(addr, "blog.example.test", ca).Get("https://blog.example.test/"); err == nil {
			t.Error("a removed domain still shakes hands")
		}
		resp, err := tlsClient(addr, "www.example.test", ca).Get("https://www.example.test/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Backend") != "blog" {
			t.Errorf("www.example.test moved to blog: served by %q", resp.Header.Get("X-Backend"))
		}
	})
	t.Run("apps domain refused", func(t *testing.T) {
		if err := rt.SetDomains([]router.Domain{{Name: "x.acme." + domain, Tenant: "acme", App: "web"}}); err == nil {
			t.Error("a domain under the apps domain was taken")
		}
	})
}

// TestTLSHandshakeTimeout: a client that connects to the TLS listener and never finishes its
// handshake is disconnected after ReadHeaderTimeout, and holds nothing after.
func TestTLSHandshakeTimeout(t *testing.T) {
	rt := startRouter(t, router.Config{ReadHeaderTimeout: 200 * time.Millisecond})
	addr := serveTLS(t, rt)
	for _, hello := range [][]byte{nil, {0x16, 0x03, 0x01, 0x02, 0x00}} { // nothing; a record header that promises more
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(hello)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		t0 := time.Now()
		_, err = io.ReadAll(nc)
		nc.Close()
		if took := time.Since(t0); err != nil || took > 2*time.Second {
			t.Fatalf("hello %x: connection closed after %v (%v), want about 200ms", hello, took, err)
		}
	}
	waitFor(t, "no connection left", func() bool { return rt.Stats().Conns == 0 })
}

// TestRedirectNotAfterPeer: a request a peer router passed on (it carries Enjin-Hop and comes
// from a peer's address) for a redirecting domain is served: that router's client asked over
// TLS, or was redirected there already. From anyone else it is redirected.
func TestRedirectNotAfterPeer(t *testing.T) {
	blog := startBackend(t, "blog")
	rt := startRouter(t, router.Config{})
	rt.SetRoute("acme", "blog", []router.Backend{blog.Backend()})
	rt.SetRoute("acme", "elsewhere", []router.Backend{{ID: "peer", Addr: "127.0.0.1:1", Peer: true}}) // loopback is a peer's
	if err := rt.SetDomains([]router.Domain{{Name: "blog.example.test", Tenant: "acme", App: "blog", Redirect: true}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		hop    string
		status int
	}{{"", 308}, {"Enjin-Hop: 1\r\n", 200}} {
		status, out, err := rawExchange(rt.Addr().String(), []byte("GET /p HTTP/1.1\r\nHost: blog.example.test\r\n"+tc.hop+"Connection: close\r\n\r\n"), 5*time.Second)
		if err != nil || status != tc.status {
			t.Errorf("hop %q: got %d %v\n%s\nwant %d", tc.hop, status, err, out, tc.status)
		}
	}
}
