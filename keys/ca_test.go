package keys_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"

	"enjin/keys"
)

// handshake runs a TLS handshake between a server serving cert and a client with cfg, over
// a pipe, and returns the client's error.
func handshake(t *testing.T, server *tls.Config, client *tls.Config) error {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srvErr := make(chan error, 1)
	go func() { srvErr <- tls.Server(a, server).Handshake(); a.Close() }()
	err := tls.Client(b, client).Handshake()
	b.Close()
	<-srvErr
	return err
}

func TestCAServesAndRefusesOtherCAs(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	chain, err := keys.Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := chain.CA()
	if err != nil {
		t.Fatal(err)
	}
	again, err := keys.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca2, err := again.CA(); err != nil || ca2.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("the CA changed when loaded again: %v", err)
	}
	copyDir := t.TempDir()
	if err := keys.CopyChain(dir, copyDir); err != nil {
		t.Fatal(err)
	}
	copied, _ := keys.Load(copyDir)
	if c, err := copied.CA(); err != nil || c.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("a copy of the chain has another CA: %v", err)
	}
	otherChain, _ := keys.Init(other)
	otherCA, _ := otherChain.CA()

	cert, err := ca.Issue([]string{keys.Ring0Name}, []net.IP{net.IPv4(100, 64, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv := ca.ServerTLS(cert, false)
	good, _ := keys.ClientTLS(ca.PEM, keys.Ring0Name)
	if err := handshake(t, srv, good); err != nil {
		t.Fatalf("a client trusting the CA: %v", err)
	}
	wrongCA, _ := keys.ClientTLS(otherCA.PEM, keys.Ring0Name)
	var unknown x509.UnknownAuthorityError
	if err := handshake(t, srv, wrongCA); !errors.As(err, &unknown) {
		t.Fatalf("a client trusting another CA: %v, want unknown authority", err)
	}
	wrongName, _ := keys.ClientTLS(ca.PEM, keys.NodeName("ring1-x"))
	if err := handshake(t, srv, wrongName); err == nil || !strings.Contains(err.Error(), "certificate is valid for") {
		t.Fatalf("a client expecting another name: %v", err)
	}
	// A server whose certificate comes from another CA, though it names ring 0.
	impostor, _ := otherCA.Issue([]string{keys.Ring0Name}, nil)
	if err := handshake(t, otherCA.ServerTLS(impostor, false), good); err == nil {
		t.Fatal("an impostor's certificate was accepted")
	}

	// Pinned by fingerprint, as a joining node does.
	var got *x509.Certificate
	pinned, err := keys.PinnedTLS(ca.Fingerprint(), keys.Ring0Name, &got)
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, srv, pinned); err != nil || got == nil || keys.Fingerprint(got) != ca.Fingerprint() {
		t.Fatalf("pinned to the right CA: %v (got %v)", err, got)
	}
	got = nil
	pinnedOther, _ := keys.PinnedTLS(otherCA.Fingerprint(), keys.Ring0Name, &got)
	if err := handshake(t, srv, pinnedOther); err == nil || !strings.Contains(err.Error(), "not from the CA the join token names") || got != nil {
		t.Fatalf("pinned to another CA: %v", err)
	}
	got = nil
	pinnedImp, _ := keys.PinnedTLS(ca.Fingerprint(), keys.Ring0Name, &got)
	// The impostor shows the real CA's certificate after its own, which it did not sign.
	imp := impostor
	imp.Certificate = [][]byte{impostor.Certificate[0], ca.Cert.Raw}
	if err := handshake(t, otherCA.ServerTLS(imp, false), pinnedImp); err == nil || got != nil {
		t.Fatalf("an impostor showing the pinned CA after its own certificate: %v", err)
	}
	if _, err := keys.PinnedTLS("sha256:abc", keys.Ring0Name, &got); err == nil {
		t.Fatal("a malformed fingerprint was taken")
	}
}

func TestCASignsNodeKeys(t *testing.T) {
	chain, _ := keys.Init(t.TempDir())
	ca, _ := chain.CA()
	keyPEM, pubPEM, err := keys.NewKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignKey(pubPEM, []string{keys.NodeName("ring1-b")})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := keys.ClientTLS(ca.PEM, keys.NodeName("ring1-b"))
	if err := handshake(t, &tls.Config{Certificates: []tls.Certificate{pair}}, good); err != nil {
		t.Fatalf("the node's certificate: %v", err)
	}
	other, _ := keys.ClientTLS(ca.PEM, keys.NodeName("ring1-c"))
	if err := handshake(t, &tls.Config{Certificates: []tls.Certificate{pair}}, other); err == nil {
		t.Fatal("ring1-b's certificate passed for ring1-c")
	}
	for _, bad := range []string{"", "garbage", string(certPEM), "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"} {
		if _, err := ca.SignKey([]byte(bad), []string{"x"}); err == nil {
			t.Errorf("SignKey(%.30q) signed", bad)
		}
	}
	secret, fp := keys.SplitJoinToken(keys.JoinToken("abc_-1", ca.Fingerprint()))
	if secret != "abc_-1" || fp != ca.Fingerprint() || !keys.ValidFingerprint(fp) {
		t.Fatalf("join token round trip: %q %q", secret, fp)
	}
}
