package ring1

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/services/router"
)

// Bounds on one set of custom domains from ring 0.
const (
	maxDomains     = 10_000
	maxDomainParts = 1_000
)

// domainParts gathers the parts of one set of custom domains until all have come.
type domainParts struct {
	mu    sync.Mutex
	set   string
	parts [][]bus.Domain
	chals [][]bus.Challenge
	got   []bool
	have  int
}

// add keeps part p and returns the whole set once every part of it is in; a part of another
// set starts over with that one.
func (d *domainParts) add(p bus.Domains) ([]bus.Domain, []bus.Challenge, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.Set != d.set || len(d.parts) != p.Parts {
		d.set, d.parts, d.chals, d.got, d.have = p.Set, make([][]bus.Domain, p.Parts), make([][]bus.Challenge, p.Parts), make([]bool, p.Parts), 0
	}
	if !d.got[p.Part] {
		d.got[p.Part], d.have = true, d.have+1
	}
	d.parts[p.Part], d.chals[p.Part] = p.Domains, p.Challenges
	if d.have < len(d.parts) {
		return nil, nil, false
	}
	var all []bus.Domain
	for _, ds := range d.parts {
		all = append(all, ds...)
	}
	var chals []bus.Challenge
	for _, cs := range d.chals {
		chals = append(chals, cs...)
	}
	d.set, d.parts, d.chals, d.got, d.have = "", nil, nil, nil, 0
	return all, chals, true
}

// domains takes a part of ring 0's list of every app's custom domains, with their
// certificates and keys, and once it has them all makes them (and the ACME challenges pending
// for domains) the router's. The keys stay in
// memory: nothing is written to disk. A domain whose certificate and key do not make a pair
// is left out, and said so.
func (n *Node) domains(m *nats.Msg) (any, error) {
	x := n.routes.Load()
	if x == nil {
		return nil, errors.New("domains: this node runs no apps")
	}
	var in bus.Domains
	if err := json.Unmarshal(m.Data, &in); err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	if in.Parts < 1 || in.Parts > maxDomainParts || in.Part < 0 || in.Part >= in.Parts || len(in.Domains) > maxDomains || len(in.Challenges) > maxDomains {
		return nil, fmt.Errorf("domains: part %d of %d with %d domains and %d challenges: out of bounds", in.Part, in.Parts, len(in.Domains), len(in.Challenges))
	}
	all, chals, whole := n.domainParts.add(in)
	if !whole {
		return struct{}{}, nil
	}
	ds := make([]router.Domain, 0, len(all))
	for _, d := range all {
		if d.Tenant.Validate() != nil || !enjin.IsSlug(d.App) {
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
	cs := make([]router.Challenge, 0, len(chals))
	for _, c := range chals {
		cs = append(cs, router.Challenge{Domain: c.Domain, Token: c.Token, KeyAuth: c.KeyAuth})
	}
	if err := x.r.SetChallenges(cs); err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	return struct{}{}, nil
}
