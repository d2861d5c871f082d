-- The inventory of record for every ring.
--
-- User-facing objects (compartments, tiers, nodes) carry metadata jsonb and a version:
-- writes name the version they read (If-Match) and every version is kept in history.

CREATE TABLE compartments (
    id          uuid PRIMARY KEY,
    ring        smallint NOT NULL CHECK (ring BETWEEN 0 AND 2),
    type        text NOT NULL CHECK (type ~ '^[a-z][a-z0-9-]{0,62}$'),
    label       text NOT NULL CHECK (length(label) <= 200),
    metadata    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A DAG: a rack is in a row and on a power feed. Cycles are refused by the writer, which
-- locks the edges table while it checks.
CREATE TABLE compartment_edges (
    parent  uuid NOT NULL REFERENCES compartments (id) ON DELETE CASCADE,
    child   uuid NOT NULL REFERENCES compartments (id) ON DELETE CASCADE,
    PRIMARY KEY (parent, child),
    CHECK (parent <> child)
);
CREATE INDEX compartment_edges_child ON compartment_edges (child);

CREATE TABLE tiers (
    id          uuid PRIMARY KEY,
    ring        smallint NOT NULL CHECK (ring BETWEEN 0 AND 2),
    label       text NOT NULL CHECK (length(label) <= 200),
    replicas    int NOT NULL DEFAULT 1 CHECK (replicas BETWEEN 0 AND 100),
    metadata    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nodes (
    id                    text PRIMARY KEY CHECK (id ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    ring                  smallint NOT NULL CHECK (ring BETWEEN 0 AND 2),
    label                 text NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    supervision_strategy  text NOT NULL CHECK (supervision_strategy IN ('process', 'libvirt', 'external')),
    observation_strategy  text NOT NULL CHECK (observation_strategy IN ('self', 'probe')),
    compartment           uuid REFERENCES compartments (id) ON DELETE SET NULL,
    parent_node           text REFERENCES nodes (id) ON DELETE SET NULL,
    auth_pub              text NOT NULL DEFAULT '',
    attest_pub            text NOT NULL DEFAULT '',
    desired_state         text NOT NULL DEFAULT 'up',
    observed_state        text NOT NULL DEFAULT '',          -- what the node last claimed
    state                 text NOT NULL DEFAULT 'unknown'    -- ring 0's judgement
                          CHECK (state IN ('unknown', 'up', 'suspect', 'down')),
    last_seq              bigint NOT NULL DEFAULT 0,
    last_obs_ts           bigint,                            -- node's clock, unix ns
    last_obs_at           timestamptz,                       -- ring 0's clock at receipt
    last_payload          bytea,                             -- no longer written: the latest is node_observations (id, last_seq)
    metadata              jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    version               bigint NOT NULL DEFAULT 1,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50); -- room on each page: every heartbeat updates the row in place (HOT)
CREATE INDEX nodes_ring_state ON nodes (ring, state);
CREATE INDEX nodes_metadata ON nodes USING gin (metadata jsonb_path_ops);
CREATE INDEX nodes_compartment ON nodes (compartment);

-- Every attestation key a node has had, so an old observation stays verifiable after a
-- key rotation.
CREATE TABLE node_keys (
    node_id        text NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    attest_pub     text NOT NULL,
    registered_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, attest_pub)
);

CREATE TABLE node_tiers (
    node_id  text NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    tier_id  uuid NOT NULL REFERENCES tiers (id) ON DELETE CASCADE,
    role     text NOT NULL CHECK (role IN ('primary', 'replica')),
    epoch    bigint NOT NULL DEFAULT 0,   -- fencing epoch: raised by every promotion
    PRIMARY KEY (node_id, tier_id)
);
-- At most one primary per tier, whatever the writers do.
CREATE UNIQUE INDEX node_tiers_one_primary ON node_tiers (tier_id) WHERE role = 'primary';
CREATE INDEX node_tiers_tier ON node_tiers (tier_id);

-- Append-only: what nodes claimed, with the exact signed bytes, so anyone can verify later.
-- Partitioned by the node's timestamp (unix ns), one partition a day; retention drops whole
-- partitions. The key includes ts_ns (the partition key); a genuine re-delivery carries the
-- same ts, so (node_id, seq) stays deduplicated.
CREATE TABLE node_observations (
    node_id      text NOT NULL,
    seq          bigint NOT NULL,
    ts_ns        bigint NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    signer       text NOT NULL,
    sig          bytea NOT NULL,
    payload      bytea NOT NULL,
    PRIMARY KEY (node_id, seq, ts_ns)
) PARTITION BY RANGE (ts_ns);

CREATE TABLE credentials (
    jti         text PRIMARY KEY,
    account     text NOT NULL,
    subject     text NOT NULL,         -- the user public key
    node_id     text,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX credentials_subject ON credentials (subject);

-- One-time join tokens for the external strategy; only a hash of the token is stored.
CREATE TABLE join_tokens (
    token_hash  bytea PRIMARY KEY,
    node_id     text NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- Every version of every user-facing object.
CREATE TABLE history (
    kind        text NOT NULL,
    id          text NOT NULL,
    version     bigint NOT NULL,
    data        jsonb NOT NULL,
    deleted     boolean NOT NULL DEFAULT false,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id, version)
);

CREATE TABLE settings (
    key    text PRIMARY KEY,
    value  jsonb NOT NULL
);
INSERT INTO settings (key, value) VALUES ('observation_retention_days', '7');
