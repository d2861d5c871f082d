package ring1

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"enjin/bus"
	"enjin/rings"
	"enjin/services/router"
)

// maxDomains bounds the custom domains one command may carry.
const maxDomains = 10_000

// domains takes ring 0's list of every app's custom domains, with their certificates and
// keys, and makes it the router's. The keys stay in memory: nothing is written to disk. A
// domain whose certificate and key do not make a pair is left out, and said so.
func (n *Node) domains(m *nats.Msg) (any, error) {
	x := n.routes.Load()
	if x == nil {
		return nil, errors.New("domains: this node runs no apps")
	}
	var in bus.Domains
	if err := json.Unmarshal(m.Data, &in); err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	if len(in.Domains) > maxDomains {
		return nil, fmt.Errorf("domains: %d domains; at most %d", len(in.Domains), maxDomains)
	}
	ds := make([]router.Domain, 0, len(in.Domains))
	for _, d := range in.Domains {
		if d.Tenant.Validate() != nil || !rings.IsSlug(d.App) {
			return nil, fmt.Errorf("domains: %q: %q/%q is not a tenant's app", d.Domain, d.Tenant, d.App)
		}
		cert, err := tls.X509KeyPair([]byte(d.Cert), []byte(d.Key))
		if err != nil {
			n.log.Error("a custom domain's certificate is not served", "domain", d.Domain, "tenant", d.Tenant, "err", err)
			continue
		}
		ds = append(ds, router.Domain{Name: d.Domain, Tenant: string(d.Tenant), App: d.App, Cert: &cert, Redirect: d.Redirect})
	}
	if err := x.r.SetDomains(ds); err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	return struct{}{}, nil
}
