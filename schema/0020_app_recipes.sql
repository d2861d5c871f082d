-- What it takes to run each placed app on another host when its own goes down, kept by the
-- leading ring 0 member as the host reports it: the live release's package (the bundle's
-- bytes), and its recipe — release, environment, scale — sealed (AES-256-GCM under a key
-- derived from the operator signing key, bound to the app), since an environment holds
-- secrets. Gone with the app's placement.
CREATE TABLE app_recipes (
    tenant_id  text NOT NULL,
    app        text NOT NULL,
    node_id    text NOT NULL,   -- the host it was read from
    release    integer NOT NULL, -- the live release's number there
    digest     text NOT NULL,   -- its package's, as that host named it
    scale      jsonb NOT NULL,  -- instances by process type (no secret: compared in the clear)
    sealed     bytea NOT NULL,  -- the recipe as JSON (apphost.Recipe), sealed
    package    bytea NOT NULL,
    taken      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, app),
    FOREIGN KEY (tenant_id, app) REFERENCES app_hosts (tenant_id, app) ON DELETE CASCADE
);
-- An app re-placed off a host that went down names it here until the new host has run it;
-- the old host, once back, drops its copy.
ALTER TABLE app_hosts ADD COLUMN moved_from text;
