-- Where a tenant's app runs: the ring 1 node hosting it, always one of the tenant's hosts.
-- An app with no row (deployed before apps were placed) runs on the tenant's first host
-- that hosts apps.
CREATE TABLE app_hosts (
    tenant_id  text NOT NULL,
    app        text NOT NULL,
    node_id    text NOT NULL,
    placed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, app),
    FOREIGN KEY (tenant_id, node_id) REFERENCES tenant_hosts (tenant_id, node_id) ON DELETE CASCADE
);
