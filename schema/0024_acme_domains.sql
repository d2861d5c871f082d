-- Custom domains whose certificates ring 0 obtains from the operator's ACME server, and
-- renews. The issued certificate and its sealed key are kept in app_domains like an uploaded
-- one, so the routers serve it the same way; this table holds what ACME needs: whose the
-- domain is while nothing is issued yet (a domain is one app's across both tables), how the
-- last attempt went and when to try again. Gone with the app's placement, or when the domain
-- is removed, or given an uploaded certificate instead.
CREATE TABLE acme_domains (
    domain     text PRIMARY KEY,         -- as app_domains.domain
    tenant_id  text NOT NULL,
    app        text NOT NULL,
    redirect   boolean NOT NULL DEFAULT false,
    state      text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'issued', 'failed')),
    last_error text NOT NULL DEFAULT '',
    attempts   integer NOT NULL DEFAULT 0, -- failures in a row, for the backoff
    next_try   timestamptz NOT NULL DEFAULT now(),
    not_before timestamptz,              -- the issued certificate's, for renewal
    not_after  timestamptz,
    added      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, app) REFERENCES app_hosts (tenant_id, app) ON DELETE CASCADE
);
