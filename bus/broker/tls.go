package broker

import (
	"crypto/tls"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"enjin/keys"
)

// Loopback says whether a listen host is reached from this machine only: a loopback address,
// or "localhost". Anything else (a specific address, "0.0.0.0", a name) is served with TLS.
func Loopback(host string) bool {
	if host == "" || host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// secure gives every listener of opts that is off loopback TLS with a certificate from the
// chain's CA, naming keys.Ring0Name (what clients verify) and the listen address: clients to
// the client port; routes and leafnodes both ways (each side shows a certificate from the CA).
func secure(opts *server.Options, chain *keys.Chain) error {
	var ca *keys.CA
	cert := func(host string) (tls.Certificate, error) {
		var err error
		if ca == nil {
			if ca, err = chain.CA(); err != nil {
				return tls.Certificate{}, err
			}
		}
		return Ring0Cert(ca, host)
	}
	if !Loopback(opts.Host) {
		c, err := cert(opts.Host)
		if err != nil {
			return err
		}
		opts.TLSConfig, opts.TLSTimeout = ca.ServerTLS(c, false), 2
	}
	if opts.Cluster.Port != 0 && !Loopback(opts.Cluster.Host) {
		c, err := cert(opts.Cluster.Host)
		if err != nil {
			return err
		}
		t := ca.ServerTLS(c, true)
		t.RootCAs, t.ServerName = ca.Pool(), keys.Ring0Name // dialling the other members
		opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = t, 2
	}
	if opts.LeafNode.Port != 0 && !Loopback(opts.LeafNode.Host) {
		c, err := cert(opts.LeafNode.Host)
		if err != nil {
			return err
		}
		opts.LeafNode.TLSConfig, opts.LeafNode.TLSTimeout = ca.ServerTLS(c, false), 2
	}
	return nil
}

// Ring0Cert issues a ring 0 listener on host its certificate: keys.Ring0Name, which ring 0's
// own clients check, and the names and addresses others dial it by.
func Ring0Cert(ca *keys.CA, host string) (tls.Certificate, error) {
	return ca.Issue(certNames(host), certIPs(host))
}

// certNames are the DNS names in a ring 0 certificate for a listener on host.
func certNames(host string) []string {
	names := []string{keys.Ring0Name, "localhost"}
	if _, err := netip.ParseAddr(host); err != nil && host != "" && host != "localhost" {
		names = append(names, host)
	}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append(names, h)
	}
	return names
}

// certIPs are the addresses in a ring 0 certificate for a listener on host: that one, or,
// listening on every address, the machine's.
func certIPs(host string) []net.IP {
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return ips
	}
	if !a.IsUnspecified() {
		return append(ips, a.AsSlice())
	}
	addrs, _ := net.InterfaceAddrs()
	for _, ad := range addrs {
		if n, ok := ad.(*net.IPNet); ok && !n.IP.IsLoopback() {
			ips = append(ips, n.IP)
		}
	}
	return ips
}

// scheme is url's scheme with "://": every member's client port is TLS or none is.
func scheme(url string) string {
	if s, _, ok := strings.Cut(url, "://"); ok {
		return s + "://"
	}
	return "nats://"
}
