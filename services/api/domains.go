package api

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"enjin/services/inventory"
)

// Sealer seals secrets ring 0 keeps in the store (a domain's private key), bound to a label.
type Sealer interface {
	Seal(label string, plain []byte) ([]byte, error)
}

// DomainKeyLabel is what a domain's sealed private key is bound to.
func DomainKeyLabel(domain string) string { return "domain/" + domain + "/key" }

// Bounds on what a custom domain's certificate may hold.
const (
	maxCertPEM   = 64 << 10
	maxKeyPEM    = 16 << 10
	maxCertChain = 10
)

// DomainPut is the body of PUT /v1/tenants/{tenant}/apps/{app}/domains/{domain}: a
// certificate and its key, or acme.
type DomainPut struct {
	Cert string `json:"cert,omitempty"` // PEM: the domain's certificate, then its chain
	Key  string `json:"key,omitempty"`  // PEM: the certificate's private key (PKCS #8, PKCS #1 or SEC 1)
	// ACME has ring 0 get the certificate from the cloud's ACME server, proving the domain by
	// HTTP-01 through the routers, and renew it; instead of cert and key.
	ACME bool `json:"acme,omitempty"`
	// Redirect answers plain HTTP requests for the domain with 308 to https.
	Redirect bool `json:"redirect,omitempty"`
}

func (b *DomainPut) validate() error {
	if len(b.Cert) > maxCertPEM || len(b.Key) > maxKeyPEM {
		return &apiError{http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("cert (%d bytes) or key (%d bytes) too large: at most %d and %d", len(b.Cert), len(b.Key), maxCertPEM, maxKeyPEM)}
	}
	switch {
	case b.ACME && (b.Cert != "" || b.Key != ""):
		return &apiError{http.StatusUnprocessableEntity, "cert_or_acme", "give either cert and key, or acme: not both"}
	case !b.ACME && (b.Cert == "" || b.Key == ""):
		return &apiError{http.StatusUnprocessableEntity, "cert_or_acme", "give cert and key (PEM), or acme: true to have the cloud's ACME server issue the certificate"}
	}
	return nil
}

type domainList struct {
	Domains []inventory.AppDomain `json:"domains"`
}

// checkDomain normalizes a domain name: lower-case ASCII (a Unicode label becomes its IDNA
// A-label), no final dot, at least two labels of letters, digits and inner hyphens, not an
// address. A wildcard is refused: a domain names one host.
func checkDomain(s string) (string, bool) {
	if s == "" || len(s) > 1000 || strings.ContainsAny(s, "*_") {
		return s, false
	}
	a, err := idna.Lookup.ToASCII(strings.TrimSuffix(s, "."))
	if err != nil {
		return s, false
	}
	if u, err := idna.Lookup.ToUnicode(a); err != nil || mustASCII(u) != a { // xn-- labels must round-trip
		return s, false
	}
	labels := strings.Split(a, ".")
	if len(a) > 253 || len(labels) < 2 || strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return s, false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return s, false
		}
	}
	return a, true
}

func mustASCII(u string) string {
	a, err := idna.Lookup.ToASCII(u)
	if err != nil {
		return ""
	}
	return a
}

func (c *call) domain() string { return c.path["domain"] }

func (a *API) listDomains(c *call) error {
	ds, err := a.store.ListDomains(c.ctx, c.tenant(), c.path["app"])
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, domainList{Domains: nonNil(ds)})
	return nil
}

// putDomain gives an app a custom domain with its certificate, once both are checked: the
// domain outside the cloud's apps domain, the certificate current and naming it, the key its.
func (a *API) putDomain(c *call) error {
	if a.sealer == nil {
		return &apiError{http.StatusServiceUnavailable, "unavailable", "this ring 0 keeps no custom domains"}
	}
	name, b := c.domain(), c.in.(*DomainPut)
	if ad := a.appsDomain; ad != "" && (name == ad || strings.HasSuffix(name, "."+ad)) {
		return &apiError{http.StatusUnprocessableEntity, "apps_domain",
			fmt.Sprintf("domain %s is under the cloud's apps domain %s, whose names are tenants' apps: choose a domain of your own", name, ad)}
	}
	if b.ACME {
		return a.putACMEDomain(c, name, b.Redirect)
	}
	chain, leaf, err := parseCertChain(b.Cert)
	if err != nil {
		return err
	}
	keyPEM, err := parseKeyFor(b.Key, leaf)
	if err != nil {
		return err
	}
	switch now := time.Now(); {
	case now.After(leaf.NotAfter):
		return &apiError{http.StatusUnprocessableEntity, "cert_expired", fmt.Sprintf("the certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))}
	case leaf.VerifyHostname(name) != nil:
		return &apiError{http.StatusUnprocessableEntity, "cert_name", fmt.Sprintf("the certificate does not name %s (its names: %s)", name, trunc(strings.Join(leaf.DNSNames, ", "), 200))}
	}
	sealed, err := a.sealer.Seal(DomainKeyLabel(name), keyPEM)
	if err != nil {
		return fmt.Errorf("api: seal the key of %s: %w", name, err)
	}
	sum := sha256.Sum256(leaf.Raw)
	d, err := a.store.PutDomain(c.ctx, inventory.DomainCert{AppDomain: inventory.AppDomain{Domain: name, Tenant: c.tenant(), App: c.path["app"],
		Fingerprint: hex.EncodeToString(sum[:]), NotAfter: leaf.NotAfter, Redirect: b.Redirect}, CertPEM: chain, KeySealed: sealed})
	if err != nil {
		return err
	}
	if a.domainsChanged != nil {
		a.domainsChanged()
	}
	a.reply(c.w, http.StatusOK, d)
	return nil
}

// putACMEDomain leaves domain's certificate to ring 0, which asks the ACME server for one
// (and renews it) while the request is answered: 202, state pending; ls says how it went.
func (a *API) putACMEDomain(c *call, name string, redirect bool) error {
	if !a.acme {
		return &apiError{http.StatusUnprocessableEntity, "acme_unconfigured",
			"this cloud has no ACME server: its operator starts ring 0 with --acme-directory; or give cert and key"}
	}
	d, err := a.store.PutACMEDomain(c.ctx, c.tenant(), c.path["app"], name, redirect)
	if err != nil {
		return err
	}
	if a.domainsChanged != nil {
		a.domainsChanged()
	}
	a.reply(c.w, http.StatusAccepted, d)
	return nil
}

func (a *API) deleteDomain(c *call) error {
	if err := a.store.DeleteDomain(c.ctx, c.tenant(), c.path["app"], c.domain()); err != nil {
		return err
	}
	if a.domainsChanged != nil {
		a.domainsChanged()
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func badCert(format string, args ...any) error {
	return &apiError{http.StatusUnprocessableEntity, "bad_cert", fmt.Sprintf(format, args...)}
}

// parseCertChain reads the certificates of s (PEM, the leaf first) and returns them
// re-encoded, nothing else kept, with the leaf parsed.
func parseCertChain(s string) (string, *x509.Certificate, error) {
	var out strings.Builder
	var leaf *x509.Certificate
	rest := []byte(s)
	for n := 0; ; n++ {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" || n >= maxCertChain {
			return "", nil, badCert("cert: want at most %d PEM blocks of type CERTIFICATE, the domain's first; found %q", maxCertChain, trunc(blk.Type, 40))
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return "", nil, badCert("cert: certificate %d does not parse: %s", n+1, oneLine(err.Error()))
		}
		if leaf == nil {
			leaf = cert
		}
		pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: blk.Bytes})
	}
	if leaf == nil {
		return "", nil, badCert("cert: no PEM certificate (-----BEGIN CERTIFICATE-----) found")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return "", nil, badCert("cert: text that is no PEM block follows the certificates")
	}
	return out.String(), leaf, nil
}

// parseKeyFor reads the private key in s (PEM) and checks it is leaf's; it returns the key
// as PKCS #8 PEM.
func parseKeyFor(s string, leaf *x509.Certificate) ([]byte, error) {
	blk, rest := pem.Decode([]byte(s))
	if blk == nil || strings.TrimSpace(string(rest)) != "" {
		return nil, &apiError{http.StatusUnprocessableEntity, "bad_key", "key: want one PEM private key block"}
	}
	var key any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		err = fmt.Errorf("PEM block type %q is no private key's", trunc(blk.Type, 40))
	}
	if err != nil {
		return nil, &apiError{http.StatusUnprocessableEntity, "bad_key", "key: " + oneLine(err.Error())}
	}
	signer, ok := key.(crypto.Signer)
	pub, ok2 := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !ok2 || !pub.Equal(signer.Public()) {
		return nil, &apiError{http.StatusUnprocessableEntity, "key_mismatch", "key: not the private key of the certificate's public key"}
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, &apiError{http.StatusUnprocessableEntity, "bad_key", "key: " + oneLine(err.Error())}
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// domainRoutes are tenants' custom domains: names of their own that their apps answer to,
// over TLS with a certificate they give.
func (a *API) domainRoutes() []route {
	p := "/v1/tenants/{tenant}/apps/{app}/domains"
	rs := []route{
		{method: "GET", path: "/v1/tenants/{tenant}/domains", access: reader, summary: "The tenant's custom domains: domain, app, certificate fingerprint and expiry, redirect (never a key)",
			status: http.StatusOK, out: domainList{}, serve: a.listDomains},
		{method: "GET", path: p, access: reader, summary: "The app's custom domains", status: http.StatusOK, out: domainList{}, serve: a.listDomains},
		{method: "PUT", path: p + "/{domain}", access: admin, summary: "Give the app a custom domain, or a new certificate for one it has: the certificate (PEM, current, naming the domain) and its private key, which no answer ever shows; or acme, and ring 0 gets one from the cloud's ACME server and renews it (202, state pending: the list says how it went; 422 acme_unconfigured if the cloud has none). 409 if another app has the domain; 422 for a domain under the cloud's apps domain",
			body: &DomainPut{}, status: http.StatusOK, accepted: true, out: inventory.AppDomain{}, serve: a.putDomain},
		{method: "DELETE", path: p + "/{domain}", access: admin, summary: "Take a custom domain from the app", status: http.StatusNoContent, serve: a.deleteDomain},
	}
	for i := range rs {
		rs[i].tenantOK = true // a tenant manages its own apps' domains
	}
	return rs
}
