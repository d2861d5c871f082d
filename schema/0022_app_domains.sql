-- Custom domains of tenants' apps, served by ring 1's routers over TLS (the certificate chosen
-- by SNI) and plain HTTP. A domain belongs to one app at a time: the primary key is what makes
-- a second tenant's claim on a taken domain fail. The certificate chain is public; the private
-- key is sealed by ring 0 (AES-256-GCM under a key derived from the operator signing key,
-- bound to the domain), never returned by the API, and opened only to be sent to the ring 1
-- nodes that route. Gone with the app's placement (the app destroyed).
CREATE TABLE app_domains (
    domain      text PRIMARY KEY,         -- lower case ASCII (IDNA A-labels), no final dot
    tenant_id   text NOT NULL,
    app         text NOT NULL,
    cert_pem    text NOT NULL,            -- the leaf first, then its chain
    fingerprint text NOT NULL,            -- SHA-256 of the leaf's DER, hex
    not_after   timestamptz NOT NULL,     -- the leaf's
    key_sealed  bytea NOT NULL,           -- the private key (PEM), sealed
    redirect    boolean NOT NULL DEFAULT false, -- plain HTTP answered 308 to https
    added       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, app) REFERENCES app_hosts (tenant_id, app) ON DELETE CASCADE
);
CREATE INDEX app_domains_app ON app_domains (tenant_id, app);
