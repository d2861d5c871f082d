package ring0

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"enjin/bus"
	"enjin/keys"
	"enjin/services/api"
	"enjin/services/inventory"
	"enjin/services/issuer"
)

// ACMEOptions name the ACME server ring 0 gets custom domains' certificates from, when a
// tenant asks for one instead of giving it.
type ACMEOptions struct {
	Directory string // the directory URL (https)
	Email     string // the account's contact, if any
	CAFile    string // PEM file of CAs trusted for the server's own TLS beside the system's, if any
}

// ACME timing: the leader looks for domains due every acmeEvery (and when one is added);
// one attempt takes at most acmeTimeout; a failed one is tried again after acmeRetry,
// doubled with each failure in a row up to acmeMaxRetry; a challenge is presented to the
// routers within acmePresent, or the server is asked to check it anyway.
const (
	acmeEvery    = 5 * time.Second
	acmeTimeout  = 2 * time.Minute
	acmeRetry    = time.Minute
	acmeMaxRetry = 6 * time.Hour
	acmePresent  = 15 * time.Second
)

// acmeState is the leader's ACME work: the challenges the routers answer now, and how far
// telling the routers has got.
type acmeState struct {
	issuer *issuer.Issuer // nil: no ACME server configured
	kick   chan struct{}  // a domain was added: look now

	mu     sync.Mutex
	chals  map[string]bus.Challenge // by token
	gen    uint64                   // counts changes to chals
	told   uint64                   // the gen every host up was last told (pushDomains)
	toldCh chan struct{}            // closed when told changes
}

// newACME prepares ring 0's ACME client, with the account key kept in stateDir.
func newACME(stateDir string, o *ACMEOptions, r *Ring0) (*issuer.Issuer, error) {
	key, err := keys.ACMEAccountKey(stateDir)
	if err != nil {
		return nil, err
	}
	return issuer.New(issuer.Config{Directory: o.Directory, Email: o.Email, CAFile: o.CAFile, AccountKey: key, Logger: r.log})
}

// again has the leader look for domains due now.
func (a *acmeState) again() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// challenges returns the challenges pending, by domain and token, and their generation.
func (a *acmeState) challenges() ([]bus.Challenge, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cs := make([]bus.Challenge, 0, len(a.chals))
	for _, c := range a.chals {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(x, y bus.Challenge) int {
		return cmp.Or(cmp.Compare(x.Domain, y.Domain), cmp.Compare(x.Token, y.Token))
	})
	return cs, a.gen
}

// toldHosts records that every host up was told the challenges of generation gen.
func (a *acmeState) toldHosts(gen uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if gen > a.told {
		a.told = gen
		if a.toldCh != nil {
			close(a.toldCh)
		}
		a.toldCh = make(chan struct{})
	}
}

// set adds (or, keyAuth "", removes) a challenge and returns the new generation, and a
// channel closed when the hosts are next told.
func (a *acmeState) set(c bus.Challenge) (uint64, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.chals == nil {
		a.chals = map[string]bus.Challenge{}
	}
	if c.KeyAuth == "" {
		delete(a.chals, c.Token)
	} else {
		a.chals[c.Token] = c
	}
	a.gen++
	if a.toldCh == nil {
		a.toldCh = make(chan struct{})
	}
	return a.gen, a.toldCh
}

// present is the issuer's Present: it has every router answer the challenge, waiting until
// the leader has told every host up (or acmePresent has passed: the server then tries).
func (r *Ring0) present(ctx context.Context, domain, token, keyAuth string) (func(), error) {
	a := &r.acme
	gen, _ := a.set(bus.Challenge{Domain: domain, Token: token, KeyAuth: keyAuth})
	withdraw := func() {
		a.set(bus.Challenge{Domain: domain, Token: token})
		r.moves.again()
	}
	r.moves.again() // tell the routers now, not at the next tick
	deadline := time.NewTimer(acmePresent)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		done, ch := a.told >= gen, a.toldCh
		a.mu.Unlock()
		if done {
			return withdraw, nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			r.log.Warn("acme: not every router was told the challenge in time; asking the server anyway", "domain", domain)
			return withdraw, nil
		case <-ctx.Done():
			withdraw()
			return nil, ctx.Err()
		}
	}
}

// tendACME gets certificates for the domains left to ACME that have none and renews those
// due, one at a time, every acmeEvery and when a domain is added, while this member leads.
func (r *Ring0) tendACME(ctx context.Context) {
	t := time.NewTicker(acmeEvery)
	defer t.Stop()
	for {
		ds, err := r.store.ACMEDomains(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("acme: domains not read", "err", err)
		}
		for _, d := range ds {
			if ctx.Err() != nil {
				return
			}
			if acmeDue(d, time.Now()) {
				r.obtain(ctx, d)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.acme.kick:
		}
	}
}

// acmeDue decides whether d needs a certificate now: one asked for (pending) or failed, once
// its retry time has come; or one issued with less than a third of its lifetime left.
func acmeDue(d inventory.ACMEDomain, now time.Time) bool {
	if now.Before(d.NextTry) {
		return false
	}
	if d.State == inventory.ACMEIssued && !d.NotAfter.IsZero() {
		return issuer.RenewDue(d.NotBefore, d.NotAfter, now)
	}
	return true
}

// acmeBackoff is how long to wait after the attempts-th failure in a row.
func acmeBackoff(attempts int) time.Duration {
	d := acmeRetry
	for i := 0; i < attempts && d < acmeMaxRetry; i++ {
		d *= 2
	}
	return min(d, acmeMaxRetry)
}

// obtain asks the ACME server for d's certificate and keeps it, sealed, like an uploaded
// one; or records why not.
func (r *Ring0) obtain(ctx context.Context, d inventory.ACMEDomain) {
	octx, cancel := context.WithTimeout(ctx, acmeTimeout)
	defer cancel()
	log := r.log.With("tenant", d.Tenant, "domain", d.Domain)
	c, err := r.acme.issuer.Obtain(octx, d.Domain, r.present)
	if err == nil {
		err = r.keepIssued(octx, d, c)
	}
	switch {
	case err == nil:
		log.Info("acme: certificate issued", "not_after", c.Leaf.NotAfter)
		r.moves.again() // the routers serve it now
	case ctx.Err() != nil:
	case errors.Is(err, inventory.ErrNotFound):
		log.Info("acme: domain removed while its certificate was issued")
	default:
		next := time.Now().Add(acmeBackoff(d.Attempts))
		log.Warn("acme: no certificate", "err", err, "next", next)
		if ferr := r.store.ACMEFailed(ctx, d, err.Error(), next); ferr != nil {
			log.Warn("acme: failure not recorded", "err", ferr)
		}
	}
}

// keepIssued seals c's key and stores it for d's domain.
func (r *Ring0) keepIssued(ctx context.Context, d inventory.ACMEDomain, c issuer.Certificate) error {
	sealed, err := r.broker.Chain().Seal(api.DomainKeyLabel(d.Domain), c.KeyPEM)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(c.Leaf.Raw)
	return r.store.ACMEIssued(ctx, inventory.DomainCert{AppDomain: inventory.AppDomain{Domain: d.Domain, Tenant: d.Tenant, App: d.App,
		Fingerprint: hex.EncodeToString(sum[:]), NotAfter: c.Leaf.NotAfter}, CertPEM: c.ChainPEM, KeySealed: sealed}, c.Leaf.NotBefore)
}
