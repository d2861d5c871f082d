-- Tenants, and the ring 1 nodes that host them (each holding a scoped signing key for the
-- tenant's NATS account; only its public half is kept here).

CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    metadata    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenant_hosts (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    node_id     text NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    scoped_pub  text NOT NULL,
    PRIMARY KEY (tenant_id, node_id)
);
