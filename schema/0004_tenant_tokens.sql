-- Bearer tokens a tenant uses for its own apps through the meta API. Only a hash is kept.
CREATE TABLE tenant_tokens (
    token_hash  bytea PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenant_tokens_tenant ON tenant_tokens (tenant_id);
