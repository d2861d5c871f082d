-- The other hosts an app's instances are spread over, beside the host it is placed on (its
-- home, in app_hosts, where its deploys go): each runs a copy of the app's live release and
-- a share of its instances, placed by the leading ring 0 member with the winning bid the host
-- signed. Gone with the app's placement.
CREATE TABLE app_replicas (
    tenant_id  text NOT NULL,
    app        text NOT NULL,
    node_id    text NOT NULL,
    bid        bytea,
    placed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, app, node_id),
    FOREIGN KEY (tenant_id, app) REFERENCES app_hosts (tenant_id, app) ON DELETE CASCADE
);
