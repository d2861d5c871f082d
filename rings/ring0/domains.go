package ring0

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"enjin/bus"
	"enjin/services/api"
)

// domainsPart bounds the domains' bytes in one message, well under the bus's 1 MiB payload.
const domainsPart = 256 << 10

// pushDomains tells each of hosts (up, running apps) every app's custom domains with their
// certificates and keys, and the ACME challenges pending, when they changed or routesAgain has passed: any host's router
// answers for any app, so each needs them all. Keys are unsealed here, in the leader's memory
// only, and travel only on each host's own command subject.
func (r *Ring0) pushDomains(ctx context.Context, hosts []api.AppsBackend) {
	if len(hosts) == 0 {
		return
	}
	certs, err := r.store.DomainCerts(ctx)
	if err != nil {
		r.log.Warn("custom domains not read", "err", err)
		return
	}
	var all []bus.Domain
	for _, c := range certs {
		key, err := r.broker.Chain().Unseal(api.DomainKeyLabel(c.Domain), c.KeySealed)
		if err != nil {
			r.log.Error("a custom domain's key does not open: not served", "domain", c.Domain, "err", err)
			continue
		}
		all = append(all, bus.Domain{Domain: c.Domain, Tenant: c.Tenant, App: c.App, Redirect: c.Redirect,
			Cert: c.CertPEM, Key: string(key)})
	}
	chals, gen := r.acme.challenges()
	b, _ := json.Marshal(bus.Domains{Domains: all, Challenges: chals})
	sum, now := sha256.Sum256(b), time.Now()
	parts := splitDomains(all, hex.EncodeToString(sum[:16]))
	parts[0].Challenges = chals
	var wg sync.WaitGroup
	var failed atomic.Bool
	for _, h := range hosts {
		if !r.domainsSent.due(h.Node, sum, now) {
			continue
		}
		wg.Go(func() {
			for _, p := range parts {
				rctx, cancel := context.WithTimeout(ctx, hostTimeout)
				_, err := bus.Request[bus.Domains, struct{}](rctx, r.nc, bus.R0ToRing1Cmd(h.Node, bus.VerbDomains), p)
				cancel()
				if err != nil {
					r.log.Debug("a host not told the custom domains", "node", h.Node, "err", err)
					failed.Store(true)
					return
				}
			}
			r.domainsSent.sent(h.Node, sum, now)
		})
	}
	wg.Wait()
	if !failed.Load() {
		r.acme.toldHosts(gen)
	}
}

// splitDomains cuts ds into messages of set of at most about domainsPart bytes each (one
// domain more if it alone is larger); no domains make one empty part.
func splitDomains(ds []bus.Domain, set string) []bus.Domains {
	var parts []bus.Domains
	cur, size := bus.Domains{Set: set}, 0
	for _, d := range ds {
		n := len(d.Cert) + len(d.Key) + len(d.Domain) + len(d.App) + len(d.Tenant) + 100
		if size > 0 && size+n > domainsPart {
			parts, cur, size = append(parts, cur), bus.Domains{Set: set}, 0
		}
		cur.Domains, size = append(cur.Domains, d), size+n
	}
	parts = append(parts, cur)
	for i := range parts {
		parts[i].Part, parts[i].Parts = i, len(parts)
	}
	return parts
}
