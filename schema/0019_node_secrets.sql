-- Secrets of a node that every ring 0 member needs, sealed (AES-256-GCM under a key derived
-- from the operator signing key, bound to node and name): the bearer ring 0 presents to a
-- ring 1 node's app API ("apps-token"), so any member forwards a tenant's app requests, not
-- only the one that started or joined the node.
CREATE TABLE node_secrets (
    node_id  text NOT NULL,
    name     text NOT NULL,
    sealed   bytea NOT NULL,
    updated  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, name)
);
