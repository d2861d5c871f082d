package ring1

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"

	"enjin/bus"
	"enjin/keys"
)

// pinnedClient is how a node joins ring0API: over https, checking ring 0's certificate
// against the CA whose fingerprint the token carries — the node knows no other yet.
func pinnedClient(ring0API, fp string) (*http.Client, error) {
	if !strings.HasPrefix(ring0API, "https://") {
		return http.DefaultClient, nil
	}
	if fp == "" {
		return nil, errors.New("ring1: join: ring 0 serves https but the token carries no CA fingerprint to check it by; ask for a new token")
	}
	var got *x509.Certificate
	tc, err := keys.PinnedTLS(fp, keys.Ring0Name, &got)
	if err != nil {
		return nil, fmt.Errorf("ring1: join: %w", err)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = tc
	return &http.Client{Transport: t}, nil
}

// keepTLS checks the CA ring 0 answered with is the one the token names (when it names
// one), and keeps it and the app API's certificate and key in dir; it returns the CA.
func keepTLS(rep JoinReply, dir, fp string, appsKey []byte) ([]byte, error) {
	if rep.CA == "" {
		if fp != "" {
			return nil, errors.New("ring 0 sent no CA, though the token names one")
		}
		return nil, nil // a ring 0 from before TLS
	}
	ca, err := keys.ParseCA([]byte(rep.CA))
	if err != nil {
		return nil, err
	}
	if fp != "" && keys.Fingerprint(ca) != fp {
		return nil, fmt.Errorf("ring 0's CA is %s, not %s as the token says", keys.Fingerprint(ca), fp)
	}
	if err := os.WriteFile(filepath.Join(dir, CAFile), []byte(rep.CA), 0o644); err != nil {
		return nil, err
	}
	if rep.AppsTLS != "" {
		if err := keys.WriteCreds(filepath.Join(dir, AppsKeyFile), appsKey); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, AppsCertFile), []byte(rep.AppsTLS), 0o644); err != nil {
			return nil, err
		}
	}
	return []byte(rep.CA), nil
}

// busTLS are the connection options that trust ring 0's brokers by the node's CA (none
// without one: brokers on loopback speak plain).
func (c Config) busTLS() []nats.Option {
	if len(c.CA) == 0 {
		return nil
	}
	o, err := bus.TrustCA(c.CA)
	if err != nil {
		return []nats.Option{func(*nats.Options) error { return err }}
	}
	return []nats.Option{o}
}
