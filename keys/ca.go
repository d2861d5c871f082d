package keys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The internal CA is part of the trust chain: ring 0 serves TLS with certificates it issues
// whenever a listener is off loopback (the meta API, the broker's client, route and leafnode
// listeners, ring 1's app API), and every client verifies against it alone. Certificates name
// services, not addresses, so relays and NAT keep working: ring 0 is Ring0Name, a ring 1
// node's app API NodeName(id).
const (
	caCertFile = "ca.crt"
	caKeyFile  = "ca.key"
	// Ring0Name is the name in every ring 0 member's certificate, and the server name its
	// clients verify, whatever address they dial.
	Ring0Name = "ring0.enjin"
	// FingerprintPrefix starts a CA fingerprint as join tokens and the API show it.
	FingerprintPrefix = "sha256:"
	caLifetime        = 20 * 365 * 24 * time.Hour
	leafLifetime      = 2 * 365 * 24 * time.Hour
)

// NodeName is the name in ring 1 node id's app API certificate.
func NodeName(id string) string { return id + ".node.enjin" }

// CA is the trust chain's certificate authority.
type CA struct {
	Cert *x509.Certificate
	PEM  []byte // the certificate, PEM-encoded: what clients are given to trust
	key  *ecdsa.PrivateKey
}

// CAFile is where the CA's certificate of the chain in stateDir lives.
func CAFile(stateDir string) string { return filepath.Join(stateDir, "keys", caCertFile) }

// CA returns the chain's CA, making it on first use (Init makes it, so copies of a chain share
// one).
func (c *Chain) CA() (*CA, error) {
	certPath, keyPath := filepath.Join(c.dir, caCertFile), filepath.Join(c.dir, caKeyFile)
	ca, err := loadCA(certPath, keyPath)
	if !errors.Is(err, fs.ErrNotExist) {
		return ca, err
	}
	if ca, err = newCA(time.Now()); err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("keys: ca: %w", err)
	}
	if err := writeSecret(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	if err := writeSecret(certPath, ca.PEM); err != nil { // public, but kept like the rest of keys/
		return nil, err
	}
	return ca, nil
}

func newCA(now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keys: ca: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "enjin internal CA", Organization: []string{"enjin"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("keys: ca: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

func loadCA(certPath, keyPath string) (*CA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("keys: ca key: %w", err)
	}
	cert, err := ParseCA(certPEM)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, fmt.Errorf("keys: %s: no PEM key", keyPath)
	}
	key, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", keyPath, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("keys: %s does not belong to %s", keyPath, certPath)
	}
	return &CA{Cert: cert, PEM: certPEM, key: key}, nil
}

// ParseCA parses a PEM CA certificate.
func ParseCA(certPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("keys: ca: no PEM certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("keys: ca: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("keys: ca: not a CA certificate")
	}
	return cert, nil
}

// Fingerprint is the CA certificate's SHA-256, as "sha256:<hex>".
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert) }

// Fingerprint is a certificate's SHA-256, as "sha256:<hex>".
func Fingerprint(c *x509.Certificate) string {
	h := sha256.Sum256(c.Raw)
	return FingerprintPrefix + hex.EncodeToString(h[:])
}

// Pool is a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue makes a fresh key and a certificate for it naming names (DNS) and ips, good as a
// server's and as a client's (routes and leafnodes authenticate both ways), chained to the CA.
func (ca *CA) Issue(names []string, ips []net.IP) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("keys: issue: %w", err)
	}
	der, err := ca.sign(names, ips, &key.PublicKey, time.Now())
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

func (ca *CA) sign(names []string, ips []net.IP, pub *ecdsa.PublicKey, now time.Time) ([]byte, error) {
	if len(names) == 0 {
		return nil, errors.New("keys: issue: no name")
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		IPAddresses:  ips,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter(now.Add(leafLifetime), ca.Cert.NotAfter),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("keys: issue: %w", err)
	}
	return der, nil
}

// ServerTLS is a TLS configuration serving cert; it also asks for client certificates from
// the CA when clientAuth (routes, leafnodes).
func (ca *CA) ServerTLS(cert tls.Certificate, clientAuth bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientAuth {
		cfg.ClientCAs, cfg.ClientAuth = ca.Pool(), tls.RequireAndVerifyClientCert
	}
	return cfg
}

// ClientTLS is a client's TLS configuration trusting only the CA in caPEM and expecting the
// server to be serverName, whatever address it is dialled at.
func ClientTLS(caPEM []byte, serverName string) (*tls.Config, error) {
	cert, err := ParseCA(caPEM)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	p.AddCert(cert)
	return &tls.Config{RootCAs: p, ServerName: serverName, MinVersion: tls.VersionTLS12}, nil
}

// PinnedTLS is the TLS configuration of a client that knows only the CA's fingerprint (a
// joining node): the server must present, after its own certificate, the CA whose SHA-256 is
// fingerprint, and its certificate must chain to it as serverName. Once connected, the CA is
// in *got, for the client to keep and trust from then on.
func PinnedTLS(fingerprint, serverName string, got **x509.Certificate) (*tls.Config, error) {
	if !ValidFingerprint(fingerprint) {
		return nil, fmt.Errorf("keys: CA fingerprint %q: want sha256:<64 hex digits>", fingerprint)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Checked below, against the pinned CA rather than the system's.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("keys: the server presented no certificate")
			}
			for _, c := range cs.PeerCertificates[1:] {
				if Fingerprint(c) != fingerprint || !c.IsCA {
					continue
				}
				p := x509.NewCertPool()
				p.AddCert(c)
				if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: p, DNSName: serverName}); err != nil {
					return fmt.Errorf("keys: server certificate: %w", err)
				}
				*got = c
				return nil
			}
			return fmt.Errorf("keys: the server's certificate is not from the CA the join token names (%s)", fingerprint)
		},
	}, nil
}

// ValidFingerprint says whether s is a CA fingerprint as Fingerprint writes it.
func ValidFingerprint(s string) bool {
	h, ok := strings.CutPrefix(s, FingerprintPrefix)
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// CertPEM encodes cert's chain and key as PEM, for a ring 1 node ring 0 runs to serve with.
func CertPEM(cert tls.Certificate) (certPEM, keyPEM []byte, err error) {
	for _, der := range cert.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	k, ok := cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("keys: not an ECDSA key")
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func notAfter(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// JoinToken is a join token as an admin is given it: the one-time secret, then the CA's
// fingerprint, for the joining node to pin before it sends the secret anywhere.
func JoinToken(secret, fingerprint string) string { return secret + "." + fingerprint }

// SplitJoinToken is JoinToken undone; a token without a fingerprint (one made before there
// was a CA) has fingerprint "".
func SplitJoinToken(tok string) (secret, fingerprint string) {
	secret, fingerprint, _ = strings.Cut(tok, ".")
	return secret, fingerprint
}

// SignKey certifies a public key a node made (PEM, PKIX; ECDSA P-256) for names: how a joining
// node's app API gets its certificate without its private key leaving it. The answer is the
// certificate and the CA's, PEM.
func (ca *CA) SignKey(pubPEM []byte, names []string) ([]byte, error) {
	pub, err := ParseNodeKey(pubPEM)
	if err != nil {
		return nil, err
	}
	der, err := ca.sign(names, nil, pub, time.Now())
	if err != nil {
		return nil, err
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.PEM...), nil
}

// ParseNodeKey parses a public key a node made for its app API (PEM, PKIX; ECDSA P-256).
func ParseNodeKey(pubPEM []byte) (*ecdsa.PublicKey, error) {
	b, _ := pem.Decode(pubPEM)
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, errors.New("keys: no PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("keys: public key: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("keys: public key: want ECDSA P-256")
	}
	return pub, nil
}

// NewKeyPEM makes an ECDSA P-256 key: its private half PEM (to keep, 0600) and its public
// half PEM (to have signed).
func NewKeyPEM() (keyPEM, pubPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), nil
}
