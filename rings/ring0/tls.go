package ring0

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"enjin"
	"enjin/bus/broker"
	"enjin/keys"
)

// Files in a ring 1 node's dir that carry TLS: the CA it trusts ring 0 by, and, for a node
// whose app API listens beyond loopback, that API's certificate and key — named as a node that
// joined keeps them (ring1.CAFile, AppsCertFile, AppsKeyFile), though these are passed by flag.
const (
	nodeCAFile      = "ca.crt"
	nodeAppsTLSCert = "apps-tls.crt"
	nodeAppsTLSKey  = "apps-tls.key"
)

// secureAPI has the meta API serve TLS, with a certificate from the CA naming keys.Ring0Name
// (what clients verify) and the address it listens on.
func (r *Ring0) secureAPI() error {
	cert, err := broker.Ring0Cert(r.ca, r.apiLn.Addr().(*net.TCPAddr).IP.String())
	if err != nil {
		return err
	}
	r.apiLn = tls.NewListener(r.apiLn, r.ca.ServerTLS(cert, false))
	r.apiTLS = true
	return nil
}

// CAFile is the CA certificate clients of this ring 0 trust (for endpoints.json).
func (r *Ring0) CAFile() string { return keys.CAFile(r.cfg.StateDir) }

// nodeTLS writes what a ring 1 node ring 0 runs needs for TLS into its dir — the CA, and,
// when its app API listens at addr beyond loopback, a certificate naming the node — and
// tells the node, in o.
func (r *Ring0) nodeTLS(id enjin.NodeID, dir string, addr netip.Addr, o *enjin.Ring1Options) error {
	o.CA = filepath.Join(dir, nodeCAFile)
	if err := os.WriteFile(o.CA, r.ca.PEM, 0o644); err != nil {
		return fmt.Errorf("ring0: %w", err)
	}
	if !addr.IsValid() || addr.IsLoopback() {
		return nil
	}
	cert, err := r.ca.Issue([]string{keys.NodeName(string(id))}, []net.IP{addr.AsSlice()})
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := keys.CertPEM(cert)
	if err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(dir, nodeAppsTLSCert), filepath.Join(dir, nodeAppsTLSKey)
	if err := keys.WriteCreds(keyPath, keyPEM); err != nil {
		return err
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return fmt.Errorf("ring0: %w", err)
	}
	o.AppsTLSCert, o.AppsTLSKey = certPath, keyPath
	return nil
}

// appsTLS is how ring 0 checks node's app API when it is served over https: a certificate
// from the CA naming the node.
func (r *Ring0) appsTLS(node enjin.NodeID, url string) *tls.Config {
	if !strings.HasPrefix(url, "https://") {
		return nil
	}
	return &tls.Config{RootCAs: r.ca.Pool(), ServerName: keys.NodeName(string(node)), MinVersion: tls.VersionTLS12}
}

// membersTLS is how ring 0 checks another member's API (https when it listens beyond
// loopback).
func (r *Ring0) membersTLS() *tls.Config {
	return &tls.Config{RootCAs: r.ca.Pool(), ServerName: keys.Ring0Name, MinVersion: tls.VersionTLS12}
}

// membersClient is an HTTP client for the other members' APIs.
func (r *Ring0) membersClient() *http.Client {
	r.membersOnce.Do(func() {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = r.membersTLS()
		r.membersHC = &http.Client{Transport: t}
	})
	return r.membersHC
}
