package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"enjin/test/harness"
)

// TestCustomDomainACME has a whole `enjin up` get a custom domain's certificate from an ACME
// server: pebble, in this process, on loopback, with its own root. `enjin domains add --acme`
// answers pending; ring 0's leader orders the certificate, every router answers the HTTP-01
// challenge, and pebble's VA really fetches it from the router's plain port (a DNS server
// of the test's points www.example.test at 127.0.0.1; nothing is taken as valid unseen).
// Then HTTPS with SNI www.example.test through the router reaches the app, with a
// certificate that chains to pebble's root; the ACME account key is kept 0600.
func TestCustomDomainACME(t *testing.T) {
	const name = "www.example.test"
	c := newCloud(t)
	routerPort := flagPort(t, c.args, "--router")
	pebbleLog, dirURL, caFile, roots := startPebble(t, c.dir, routerPort, startDNS(t, name))
	c.args = append(c.args, "--acme-directory", dirURL, "--acme-ca", caFile, "--acme-email", "ops@example.test")
	c.start()
	c.deploySamples("acme/web")

	t0 := time.Now()
	if out := c.cli("domains", "add", "acme/web", name, "--acme"); !strings.Contains(out, "acme pending") {
		t.Fatalf("domains add --acme:\n%s", out)
	}
	var last string
	if !harness.Poll(30*time.Second, func() bool {
		last = c.cli("domains", "ls", "acme/web", "-o", "json")
		var l struct {
			Domains []struct{ Domain, State, Fingerprint string }
		}
		return json.Unmarshal([]byte(last), &l) == nil && len(l.Domains) == 1 && l.Domains[0].State == "issued" && len(l.Domains[0].Fingerprint) == 64
	}) {
		t.Fatalf("no certificate issued: domains ls:\n%s\npebble:\n%s", last, pebbleLog)
	}
	t.Logf("issued %v after domains add", time.Since(t0).Round(time.Millisecond))
	if v := pebbleLog.String(); !strings.Contains(v, "http://"+name+":"+strconv.Itoa(routerPort)+"/.well-known/acme-challenge/") {
		t.Fatalf("pebble did not validate over HTTP at the router's port %d:\n%s", routerPort, v)
	}

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", c.ep.RouterTLS)
		},
		TLSClientConfig: &tls.Config{ServerName: name, RootCAs: roots},
	}}
	var got string
	if !harness.Poll(30*time.Second, func() bool {
		resp, err := client.Get("https://" + name + "/")
		if err != nil {
			got = err.Error()
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got = resp.Status + " " + string(b)
		leaf := resp.TLS.PeerCertificates[0]
		return resp.StatusCode == 200 && strings.Contains(string(b), "hello from web") && slices.Contains(leaf.DNSNames, name)
	}) {
		t.Fatalf("the app over TLS with the ACME certificate: last %s", got)
	}
	if fi, err := os.Stat(filepath.Join(c.state, "keys", "acme-account.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the ACME account key: %v %v; want a 0600 file in keys/", fi, err)
	}
	if ls := c.cli("domains", "ls", "acme"); !strings.Contains(ls, "acme issued") || strings.Contains(ls, "PRIVATE") {
		t.Fatalf("domains ls:\n%s", ls)
	}

	// A domain the ACME server cannot reach (our DNS knows no address for it) fails, and
	// says why; nothing is served for it.
	c.cli("domains", "add", "acme/web", "nowhere.example.test", "--acme")
	if !harness.Poll(20*time.Second, func() bool {
		last = c.cli("domains", "ls", "acme")
		return strings.Contains(last, "nowhere.example.test") && strings.Contains(last, "acme failed: issuer:")
	}) {
		t.Fatalf("an unreachable domain did not fail: domains ls:\n%s", last)
	}
	t.Logf("domains ls:\n%s", last)
	if conn, err := tls.Dial("tcp", c.ep.RouterTLS, &tls.Config{ServerName: "nowhere.example.test", RootCAs: roots}); err == nil {
		conn.Close()
		t.Fatal("the router shook hands for a domain with no certificate")
	}
}

// flagPort returns the port of the host:port following flag in args.
func flagPort(t *testing.T, args []string, flag string) int {
	t.Helper()
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("no %s in %v", flag, args)
	}
	_, p, err := net.SplitHostPort(args[i+1])
	n, perr := strconv.Atoi(p)
	if err != nil || perr != nil {
		t.Fatalf("%s %s: %v %v", flag, args[i+1], err, perr)
	}
	return n
}

// startDNS answers, over TCP on loopback until the test ends, A queries for name with
// 127.0.0.1 and everything else with no records: what pebble's VA resolves the domain with.
func startDNS(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, qq := range q.Question {
			if qq.Qtype == dns.TypeA && strings.EqualFold(qq.Name, dns.Fqdn(name)) {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)})
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe() // ends at Shutdown below
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// startPebble runs pebble's ACME server (its library packages, wired as cmd/pebble wires
// them) over TLS on loopback until the test ends, validating HTTP-01 on httpPort of the
// addresses dnsAddr resolves. It returns pebble's log, its directory URL, a file with the CA
// of its own TLS certificate (written in dir) and the roots its certificates chain to.
func startPebble(t *testing.T, dir string, httpPort int, dnsAddr string) (*harness.SyncBuffer, string, string, *x509.CertPool) {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")      // no random wait before validating
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0") // no nonces refused at random
	var out harness.SyncBuffer
	logger := log.New(&out, "pebble ", log.LstdFlags)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, 0, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	srv := httptest.NewTLSServer(front.Handler())
	t.Cleanup(srv.Close)
	caFile := filepath.Join(dir, "pebble-tls.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)
	return &out, srv.URL + wfe.DirectoryPath, caFile, roots
}
