// Package issuer obtains TLS certificates for custom domains from an ACME server (RFC 8555)
// the operator names — Let's Encrypt, a private one — proving each domain by HTTP-01: the
// caller makes the challenge's key authorization answerable on the domain's port 80 (ring 0
// has every router answer it) and withdraws it after. It also decides when a certificate is
// due for renewal.
//
// An Issuer is safe for concurrent use; it registers its account (one key, kept by the
// caller) once, on first use. It holds no state beyond that: what was issued is the caller's
// to keep. Ring 0 imports it.
package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
)

// Config names the ACME server and the account.
type Config struct {
	// Directory is the ACME server's directory URL, e.g.
	// https://acme-v02.api.letsencrypt.org/directory.
	Directory string
	// Email, if set, is the account's contact (mailto:).
	Email string
	// CAFile, if set, is a PEM file of certificate authorities trusted for the ACME server's
	// own TLS, beside the system's: a private ACME server's.
	CAFile string
	// AccountKey signs every request: the account is this key.
	AccountKey crypto.Signer
	Logger     *slog.Logger
}

// Issuer obtains certificates from one ACME server with one account.
type Issuer struct {
	cfg    Config
	client *acme.Client
	log    *slog.Logger

	mu         sync.Mutex
	registered bool
}

// New checks cfg and prepares an Issuer; it sends nothing yet.
func New(cfg Config) (*Issuer, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if !strings.HasPrefix(cfg.Directory, "https://") {
		return nil, fmt.Errorf("issuer: directory %q: want an https:// URL", cfg.Directory)
	}
	if cfg.AccountKey == nil {
		return nil, errors.New("issuer: no account key")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		b, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("issuer: ca file: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("issuer: ca file %s: no PEM certificate", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	c := &acme.Client{Key: cfg.AccountKey, DirectoryURL: cfg.Directory, UserAgent: "enjin",
		HTTPClient: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	return &Issuer{cfg: cfg, client: c, log: cfg.Logger}, nil
}

// Present makes token's key authorization answerable for domain over HTTP-01, returning once
// it is, and returns what withdraws it.
type Present func(ctx context.Context, domain, token, keyAuth string) (withdraw func(), err error)

// Certificate is what Obtain returns: the chain (PEM, the leaf first), its private key
// (PKCS #8 PEM) and the leaf.
type Certificate struct {
	ChainPEM string
	KeyPEM   []byte
	Leaf     *x509.Certificate
}

// register makes sure the account exists on the server (once: the same key finds it again).
func (i *Issuer) register(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.registered {
		return nil
	}
	acct := &acme.Account{}
	if i.cfg.Email != "" {
		acct.Contact = []string{"mailto:" + i.cfg.Email}
	}
	if _, err := i.client.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return fmt.Errorf("issuer: register account at %s: %w", i.cfg.Directory, err)
	}
	i.registered = true
	return nil
}

// Obtain orders a certificate for domain, proves it by HTTP-01 through present, and returns
// it with a new private key (ECDSA P-256) made for it.
func (i *Issuer) Obtain(ctx context.Context, domain string, present Present) (Certificate, error) {
	if err := i.register(ctx); err != nil {
		return Certificate{}, err
	}
	order, err := i.client.AuthorizeOrder(ctx, acme.DomainIDs(domain))
	if err != nil {
		return Certificate{}, fmt.Errorf("issuer: order for %s: %w", domain, err)
	}
	for _, u := range order.AuthzURLs {
		if err := i.authorize(ctx, domain, u, present); err != nil {
			return Certificate{}, err
		}
	}
	if order, err = i.client.WaitOrder(ctx, order.URI); err != nil {
		return Certificate{}, fmt.Errorf("issuer: order for %s: %w", domain, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Certificate{}, fmt.Errorf("issuer: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: domain}, DNSNames: []string{domain}}, key)
	if err != nil {
		return Certificate{}, fmt.Errorf("issuer: csr for %s: %w", domain, err)
	}
	ders, _, err := i.client.CreateCertFromOrder(ctx, order, csr, true)
	if err != nil {
		return Certificate{}, fmt.Errorf("issuer: certificate for %s: %w", domain, err)
	}
	return certificate(domain, ders, key)
}

// authorize proves domain for the authorization at url by its HTTP-01 challenge.
func (i *Issuer) authorize(ctx context.Context, domain, url string, present Present) error {
	z, err := i.client.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("issuer: authorization for %s: %w", domain, err)
	}
	if z.Status == acme.StatusValid {
		return nil
	}
	var chal *acme.Challenge
	for _, c := range z.Challenges {
		if c.Type == "http-01" {
			chal = c
		}
	}
	if chal == nil {
		return fmt.Errorf("issuer: authorization for %s offers no http-01 challenge", domain)
	}
	keyAuth, err := i.client.HTTP01ChallengeResponse(chal.Token)
	if err != nil {
		return fmt.Errorf("issuer: %w", err)
	}
	withdraw, err := present(ctx, domain, chal.Token, keyAuth)
	if err != nil {
		return fmt.Errorf("issuer: present the challenge for %s: %w", domain, err)
	}
	defer withdraw()
	if _, err := i.client.Accept(ctx, chal); err != nil {
		return fmt.Errorf("issuer: accept the challenge for %s: %w", domain, err)
	}
	if _, err := i.client.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("issuer: authorization for %s: %w", domain, err)
	}
	i.log.Info("acme: domain proved", "domain", domain)
	return nil
}

// certificate checks what the server issued (the leaf names domain and is key's) and encodes it.
func certificate(domain string, ders [][]byte, key *ecdsa.PrivateKey) (Certificate, error) {
	if len(ders) == 0 {
		return Certificate{}, fmt.Errorf("issuer: certificate for %s: none returned", domain)
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		return Certificate{}, fmt.Errorf("issuer: certificate for %s: %w", domain, err)
	}
	if err := leaf.VerifyHostname(domain); err != nil {
		return Certificate{}, fmt.Errorf("issuer: certificate for %s: %w", domain, err)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return Certificate{}, fmt.Errorf("issuer: certificate for %s: not for the key sent", domain)
	}
	var chain strings.Builder
	for _, d := range ders {
		pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: d})
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Certificate{}, fmt.Errorf("issuer: %w", err)
	}
	return Certificate{ChainPEM: chain.String(), KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), Leaf: leaf}, nil
}

// RenewDue reports whether a certificate valid from notBefore to notAfter should be renewed
// at now: once less than a third of its lifetime is left (30 days of Let's Encrypt's 90).
func RenewDue(notBefore, notAfter, now time.Time) bool {
	life := notAfter.Sub(notBefore)
	return life <= 0 || !now.Before(notAfter.Add(-life/3))
}
