package ring0

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"sync"
	"time"

	"enjin/bus"
	"enjin/services/api"
)

// pushDomains tells each of hosts (up, running apps) every app's custom domains with their
// certificates and keys, when they changed or routesAgain has passed: any host's router
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
	var ds bus.Domains
	for _, c := range certs {
		key, err := r.broker.Chain().Unseal(api.DomainKeyLabel(c.Domain), c.KeySealed)
		if err != nil {
			r.log.Error("a custom domain's key does not open: not served", "domain", c.Domain, "err", err)
			continue
		}
		ds.Domains = append(ds.Domains, bus.Domain{Domain: c.Domain, Tenant: c.Tenant, App: c.App, Redirect: c.Redirect,
			Cert: c.CertPEM, Key: string(key)})
	}
	b, _ := json.Marshal(ds)
	sum, now := sha256.Sum256(b), time.Now()
	var wg sync.WaitGroup
	for _, h := range hosts {
		if !r.domainsSent.due(h.Node, sum, now) {
			continue
		}
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, hostTimeout)
			defer cancel()
			if _, err := bus.Request[bus.Domains, struct{}](rctx, r.nc, bus.R0ToRing1Cmd(h.Node, bus.VerbDomains), ds); err != nil {
				r.log.Debug("a host not told the custom domains", "node", h.Node, "err", err)
				return
			}
			r.domainsSent.sent(h.Node, sum, now)
		})
	}
	wg.Wait()
}
