package bus

import (
	"github.com/nats-io/nats.go"

	"enjin/keys"
)

// TrustCA has a connection verify the broker against the trust chain's CA (caPEM) as
// keys.Ring0Name, whatever address it dials. TLS itself is the server's to ask for, or a
// tls:// URL's: a broker on loopback speaks plain, one beyond it only TLS.
func TrustCA(caPEM []byte) (nats.Option, error) {
	cfg, err := keys.ClientTLS(caPEM, keys.Ring0Name)
	if err != nil {
		return nil, err
	}
	return func(o *nats.Options) error { o.TLSConfig = cfg; return nil }, nil
}
