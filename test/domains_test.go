package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"enjin/test/harness"
)

// TestCustomDomain gives an app a custom domain with `enjin domains add` and a certificate
// from a throwaway CA, then asks the router over TLS, with SNI www.example.test and trusting
// only that CA, and gets the app's answer; plain HTTP for the domain reaches the app too. A
// second tenant cannot take the domain (409), nor one under the apps domain (4xx); once
// removed, the router no longer shakes hands for it; a destroyed app's domains are freed.
func TestCustomDomain(t *testing.T) {
	c := newCloud(t)
	c.start()
	c.deploySamples("acme/web", "evil/site")
	ca, certFile, keyFile := issueFiles(t, c.dir, "www.example.test")

	out := c.cli("domains", "add", "acme/web", "www.example.test", "--cert", certFile, "--key", keyFile)
	if !strings.Contains(out, "www.example.test") || !strings.Contains(out, "acme/web") {
		t.Fatalf("domains add:\n%s", out)
	}
	if ls := c.cli("domains", "ls", "acme"); !strings.Contains(ls, "www.example.test") || strings.Contains(ls, "PRIVATE") {
		t.Fatalf("domains ls:\n%s", ls)
	}
	if c.ep.RouterTLS == "" {
		t.Fatalf("endpoints.json names no TLS router: %+v", c.ep)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", c.ep.RouterTLS)
		},
		TLSClientConfig: &tls.Config{ServerName: "www.example.test", RootCAs: ca},
	}}
	var got string
	t0 := time.Now()
	if !harness.Poll(30*time.Second, func() bool {
		resp, err := client.Get("https://www.example.test/")
		if err != nil {
			got = err.Error()
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got = resp.Status + " " + string(b)
		return resp.StatusCode == 200 && strings.Contains(string(b), "hello from web")
	}) {
		t.Fatalf("the app over TLS as www.example.test: last %s", got)
	}
	t.Logf("served over TLS %v after domains add: %s", time.Since(t0).Round(time.Millisecond), strings.TrimSpace(got))

	req, _ := http.NewRequest("GET", "http://"+c.ep.Router+"/", nil)
	req.Host = "www.example.test"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("plain HTTP for the domain: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// The other tenant, with its own token, tries to take the domain, and one of the apps
	// domain's names.
	tokFile := filepath.Join(c.dir, "evil.token")
	os.WriteFile(tokFile, []byte(strings.TrimSpace(c.cli("tenants", "token", "evil"))+"\n"), 0o600)
	evil := func(args ...string) (string, error) {
		out, err := exec.Command(harness.Binary(t), append(args, "--api", c.ep.API, "--token-file", tokFile)...).CombinedOutput()
		return string(out), err
	}
	if out, err := evil("domains", "add", "evil/site", "www.example.test", "--cert", certFile, "--key", keyFile); err == nil || !strings.Contains(out, "409") {
		t.Fatalf("another tenant took the domain: %v\n%s", err, out)
	}
	_, appsCert, appsKey := issueFiles(t, t.TempDir(), "x.evil."+c.ep.AppsDomain)
	if out, err := evil("domains", "add", "evil/site", "x.evil."+c.ep.AppsDomain, "--cert", appsCert, "--key", appsKey); err == nil || !strings.Contains(out, "422") {
		t.Fatalf("a domain under the apps domain was taken: %v\n%s", err, out)
	}
	// This cloud names no ACME server: asking for a certificate from one is refused, and so is
	// asking for both kinds at once.
	if out, err := evil("domains", "add", "evil/site", "shop.example.test", "--acme"); err == nil || !strings.Contains(out, "422") || !strings.Contains(out, "--acme-directory") || strings.Count(strings.TrimSpace(out), "\n") > 0 {
		t.Fatalf("--acme on a cloud without an ACME server: %v\n%s", err, out)
	}
	if out, err := evil("domains", "add", "evil/site", "shop.example.test", "--acme", "--cert", certFile, "--key", keyFile); err == nil || !strings.Contains(out, "not both") {
		t.Fatalf("--acme with --cert: %v\n%s", err, out)
	}
	if out, err := evil("domains", "rm", "acme/web", "www.example.test"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("another tenant removed the domain: %v\n%s", err, out)
	}

	c.cli("domains", "rm", "acme/web", "www.example.test")
	harness.Eventually(t, 30*time.Second, func() bool {
		conn, err := tls.Dial("tcp", c.ep.RouterTLS, &tls.Config{ServerName: "www.example.test", RootCAs: ca})
		if err == nil {
			conn.Close()
		}
		return err != nil
	}, "the router refusing a removed domain's handshake")

	// A destroyed app's domains go with it, and the name is free for another.
	c.cli("domains", "add", "acme/web", "www.example.test", "--cert", certFile, "--key", keyFile, "--redirect")
	c.cli("apps", "destroy", "acme/web")
	if ls := c.cli("domains", "ls", "acme"); strings.Contains(ls, "www.example.test") {
		t.Fatalf("a destroyed app's domain is still listed:\n%s", ls)
	}
	if out, err := evil("domains", "add", "evil/site", "www.example.test", "--cert", certFile, "--key", keyFile); err != nil {
		t.Fatalf("a destroyed app's domain is not free: %v\n%s", err, out)
	}
}

// issueFiles makes a throwaway CA and a certificate from it for name, written (key 0600) in
// dir; it returns the CA's pool and the files.
func issueFiles(t *testing.T, dir, name string) (*x509.CertPool, string, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "throwaway CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(certFile, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, certFile, keyFile
}
