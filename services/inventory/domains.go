package inventory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// AppDomain is a custom domain of a tenant's app as anyone may read it: never its key.
type AppDomain struct {
	Domain      string         `json:"domain"`
	Tenant      enjin.TenantID `json:"tenant"`
	App         string         `json:"app"`
	Fingerprint string         `json:"fingerprint"` // SHA-256 of the certificate's DER, hex
	NotAfter    time.Time      `json:"not_after"`
	Redirect    bool           `json:"redirect"` // plain HTTP is answered 308 to https
	Added       time.Time      `json:"added"`
	// ACME says the certificate comes from the cloud's ACME server, which ring 0 asks for it
	// and renews; State is then pending (none issued yet, or asked again), issued or failed,
	// with the last attempt's error. Fingerprint and NotAfter are empty until one is issued.
	ACME      bool   `json:"acme,omitempty"`
	State     string `json:"state,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// DomainCert is a custom domain with what the routers need to serve it over TLS: the
// certificate chain (PEM) and the private key, sealed by the caller.
type DomainCert struct {
	AppDomain
	CertPEM   string
	KeySealed []byte
}

const domainCols = `domain, tenant_id, app, fingerprint, not_after, redirect, added`

func scanDomain(row pgx.Row, d *AppDomain, extra ...any) error {
	return row.Scan(append([]any{&d.Domain, &d.Tenant, &d.App, &d.Fingerprint, &d.NotAfter, &d.Redirect, &d.Added}, extra...)...)
}

// PutDomain gives d's app its domain, or a new certificate or redirect for a domain it has.
// Errors wrap ErrNotFound (no such app placed) or ErrExists (another app has the domain).
func (s *Store) PutDomain(ctx context.Context, d DomainCert) (AppDomain, error) {
	what := "domain " + d.Domain + " of app " + string(d.Tenant) + "/" + d.App
	var out AppDomain
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM app_hosts WHERE tenant_id = $1 AND app = $2 FOR SHARE`, string(d.Tenant), d.App).Scan(&one)
		if err != nil {
			return pgErr("app "+string(d.Tenant)+"/"+d.App, err)
		}
		// A domain left to ACME is its app's too; the app's own upload takes it off ACME.
		ct, err := tx.Exec(ctx, `DELETE FROM acme_domains WHERE domain = $1 AND tenant_id = $2 AND app = $3`, d.Domain, string(d.Tenant), d.App)
		if err != nil {
			return pgErr(what, err)
		}
		if ct.RowsAffected() == 0 {
			if err := tx.QueryRow(ctx, `SELECT 1 FROM acme_domains WHERE domain = $1`, d.Domain).Scan(&one); err == nil {
				return fmt.Errorf("inventory: %s: %w: another app has it", what, ErrExists)
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return pgErr(what, err)
			}
		}
		err = scanDomain(tx.QueryRow(ctx, `INSERT INTO app_domains AS d (domain, tenant_id, app, cert_pem, fingerprint, not_after, key_sealed, redirect)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (domain) DO UPDATE SET cert_pem = $4, fingerprint = $5, not_after = $6, key_sealed = $7, redirect = $8
				WHERE d.tenant_id = $2 AND d.app = $3
			RETURNING `+domainCols, d.Domain, string(d.Tenant), d.App, d.CertPEM, d.Fingerprint, d.NotAfter, d.KeySealed, d.Redirect), &out)
		if errors.Is(err, pgx.ErrNoRows) { // the domain is another app's: say nothing of whose
			return fmt.Errorf("inventory: %s: %w: another app has it", what, ErrExists)
		}
		return pgErr(what, err)
	})
	return out, err
}

// ListDomains lists tenant's custom domains, only app's unless app is "", by name.
func (s *Store) ListDomains(ctx context.Context, tenant enjin.TenantID, app string) ([]AppDomain, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+domainCols+` FROM app_domains WHERE tenant_id = $1 AND ($2 = '' OR app = $2) ORDER BY domain`,
		string(tenant), app)
	if err != nil {
		return nil, pgErr("domains of "+string(tenant), err)
	}
	var out []AppDomain
	var d AppDomain
	_, err = pgx.ForEachRow(rows, []any{&d.Domain, &d.Tenant, &d.App, &d.Fingerprint, &d.NotAfter, &d.Redirect, &d.Added}, func() error {
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, pgErr("domains of "+string(tenant), err)
	}
	return s.withACME(ctx, out, tenant, app)
}

// DomainCerts lists every custom domain with its certificate and sealed key, by name: what
// the routers are sent.
func (s *Store) DomainCerts(ctx context.Context) ([]DomainCert, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+domainCols+`, cert_pem, key_sealed FROM app_domains ORDER BY domain`)
	if err != nil {
		return nil, pgErr("domain certificates", err)
	}
	var out []DomainCert
	var d DomainCert
	_, err = pgx.ForEachRow(rows, []any{&d.Domain, &d.Tenant, &d.App, &d.Fingerprint, &d.NotAfter, &d.Redirect, &d.Added, &d.CertPEM, &d.KeySealed}, func() error {
		out = append(out, d)
		return nil
	})
	return out, pgErr("domain certificates", err)
}

// DeleteDomain takes domain from tenant's app (any of tenant's apps if app is ""), its
// certificate and, if ACME gets it one, that too. Errors wrap
// ErrNotFound if it has no such domain.
func (s *Store) DeleteDomain(ctx context.Context, tenant enjin.TenantID, app, domain string) error {
	var n int
	err := s.pool.QueryRow(ctx, `WITH a AS (DELETE FROM acme_domains WHERE domain = $1 AND tenant_id = $2 AND ($3 = '' OR app = $3) RETURNING 1),
		d AS (DELETE FROM app_domains WHERE domain = $1 AND tenant_id = $2 AND ($3 = '' OR app = $3) RETURNING 1)
		SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM d)`, domain, string(tenant), app).Scan(&n)
	if err == nil && n == 0 {
		return fmt.Errorf("inventory: domain %s of %s/%s: %w", domain, tenant, app, ErrNotFound)
	}
	return pgErr("delete domain "+domain, err)
}
