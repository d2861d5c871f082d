package inventory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// ACME states of a custom domain.
const (
	ACMEPending = "pending"
	ACMEIssued  = "issued"
	ACMEFailed  = "failed"
)

// ACMEDomain is a custom domain whose certificate ring 0 gets from the ACME server: what
// deciding to ask for one, or to renew it, needs.
type ACMEDomain struct {
	Domain    string
	Tenant    enjin.TenantID
	App       string
	Redirect  bool
	State     string
	Attempts  int       // failures in a row
	NextTry   time.Time // no attempt before (after a failure)
	NotBefore time.Time // the issued certificate's; zero before one is
	NotAfter  time.Time
}

// PutACMEDomain gives tenant's app domain with a certificate ring 0 will get from the ACME
// server (state pending: asked for again if it had one). A certificate it has already is kept
// until the new one comes. Errors wrap ErrNotFound (no such app placed) or ErrExists
// (another app has the domain).
func (s *Store) PutACMEDomain(ctx context.Context, tenant enjin.TenantID, app, domain string, redirect bool) (AppDomain, error) {
	what := "domain " + domain + " of app " + string(tenant) + "/" + app
	out := AppDomain{Domain: domain, Tenant: tenant, App: app, Redirect: redirect, ACME: true, State: ACMEPending}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM app_hosts WHERE tenant_id = $1 AND app = $2 FOR SHARE`, string(tenant), app).Scan(&one)
		if err != nil {
			return pgErr("app "+string(tenant)+"/"+app, err)
		}
		err = tx.QueryRow(ctx, `INSERT INTO acme_domains AS a (domain, tenant_id, app, redirect) VALUES ($1, $2, $3, $4)
			ON CONFLICT (domain) DO UPDATE SET redirect = $4, state = 'pending', last_error = '', attempts = 0, next_try = now()
				WHERE a.tenant_id = $2 AND a.app = $3
			RETURNING added`, domain, string(tenant), app, redirect).Scan(&out.Added)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("inventory: %s: %w: another app has it", what, ErrExists)
		}
		if err != nil {
			return pgErr(what, err)
		}
		var owner enjin.TenantID
		var ownerApp string
		err = tx.QueryRow(ctx, `SELECT tenant_id, app, fingerprint, not_after FROM app_domains WHERE domain = $1 FOR UPDATE`, domain).
			Scan(&owner, &ownerApp, &out.Fingerprint, &out.NotAfter)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil
		case err != nil:
			return pgErr(what, err)
		case owner != tenant || ownerApp != app:
			return fmt.Errorf("inventory: %s: %w: another app has it", what, ErrExists)
		}
		_, err = tx.Exec(ctx, `UPDATE app_domains SET redirect = $2 WHERE domain = $1`, domain, redirect)
		return pgErr(what, err)
	})
	return out, err
}

const acmeCols = `domain, tenant_id, app, redirect, state, attempts, next_try, not_before, not_after`

// ACMEDomains lists every domain left to ACME, by name.
func (s *Store) ACMEDomains(ctx context.Context) ([]ACMEDomain, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+acmeCols+` FROM acme_domains ORDER BY domain`)
	if err != nil {
		return nil, pgErr("acme domains", err)
	}
	var out []ACMEDomain
	var d ACMEDomain
	var nb, na *time.Time
	_, err = pgx.ForEachRow(rows, []any{&d.Domain, &d.Tenant, &d.App, &d.Redirect, &d.State, &d.Attempts, &d.NextTry, &nb, &na}, func() error {
		d.NotBefore, d.NotAfter = deref(nb), deref(na)
		out = append(out, d)
		return nil
	})
	return out, pgErr("acme domains", err)
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// ACMEIssued keeps the certificate ACME issued for d's domain (key sealed by the caller), as
// PutDomain keeps an uploaded one, if the domain is still its app's and left to ACME; else
// the error wraps ErrNotFound and nothing is kept.
func (s *Store) ACMEIssued(ctx context.Context, d DomainCert, notBefore time.Time) error {
	what := "acme domain " + d.Domain + " of app " + string(d.Tenant) + "/" + d.App
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var redirect bool
		err := tx.QueryRow(ctx, `SELECT redirect FROM acme_domains WHERE domain = $1 AND tenant_id = $2 AND app = $3 FOR UPDATE`,
			d.Domain, string(d.Tenant), d.App).Scan(&redirect)
		if err != nil {
			return pgErr(what, err)
		}
		ct, err := tx.Exec(ctx, `INSERT INTO app_domains AS d (domain, tenant_id, app, cert_pem, fingerprint, not_after, key_sealed, redirect)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (domain) DO UPDATE SET cert_pem = $4, fingerprint = $5, not_after = $6, key_sealed = $7, redirect = $8
				WHERE d.tenant_id = $2 AND d.app = $3`,
			d.Domain, string(d.Tenant), d.App, d.CertPEM, d.Fingerprint, d.NotAfter, d.KeySealed, redirect)
		if err == nil && ct.RowsAffected() == 0 {
			return fmt.Errorf("inventory: %s: %w: another app has it", what, ErrExists)
		}
		if err != nil {
			return pgErr(what, err)
		}
		_, err = tx.Exec(ctx, `UPDATE acme_domains SET state = 'issued', last_error = '', attempts = 0, next_try = now(), not_before = $2, not_after = $3
			WHERE domain = $1`, d.Domain, notBefore, d.NotAfter)
		return pgErr(what, err)
	})
}

// ACMEFailed records a failed attempt for d's domain (if still its app's): its error, and no
// attempt before next. A domain that has a certificate stays issued: it is still served.
func (s *Store) ACMEFailed(ctx context.Context, d ACMEDomain, msg string, next time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE acme_domains SET state = CASE WHEN state = 'issued' THEN 'issued' ELSE 'failed' END,
		last_error = $4, attempts = attempts + 1, next_try = $5 WHERE domain = $1 AND tenant_id = $2 AND app = $3`,
		d.Domain, string(d.Tenant), d.App, msg, next)
	return pgErr("acme domain "+d.Domain, err)
}

// withACME adds to ds (tenant's domains, only app's unless app is "") the state of those left
// to ACME, and those of them with no certificate yet.
func (s *Store) withACME(ctx context.Context, ds []AppDomain, tenant enjin.TenantID, app string) ([]AppDomain, error) {
	rows, err := s.pool.Query(ctx, `SELECT domain, tenant_id, app, redirect, state, last_error, added FROM acme_domains
		WHERE tenant_id = $1 AND ($2 = '' OR app = $2)`, string(tenant), app)
	if err != nil {
		return nil, pgErr("acme domains of "+string(tenant), err)
	}
	var a AppDomain
	_, err = pgx.ForEachRow(rows, []any{&a.Domain, &a.Tenant, &a.App, &a.Redirect, &a.State, &a.LastError, &a.Added}, func() error {
		a.ACME = true
		i := slices.IndexFunc(ds, func(d AppDomain) bool { return d.Domain == a.Domain })
		if i < 0 {
			ds = append(ds, a)
			return nil
		}
		ds[i].ACME, ds[i].State, ds[i].LastError = true, a.State, a.LastError
		return nil
	})
	if err != nil {
		return nil, pgErr("acme domains of "+string(tenant), err)
	}
	slices.SortFunc(ds, func(x, y AppDomain) int { return strings.Compare(x.Domain, y.Domain) })
	return ds, nil
}
