-- The credential of scheduled backups: a bearer token (stored as its SHA-256) that the meta
-- API accepts for one route only, GET /v1/backup. The system tenant's backup job holds it.
-- Issuing a new one revokes the others: there is at most one row.
CREATE TABLE backup_tokens (
    token_hash bytea PRIMARY KEY,
    issued     timestamptz NOT NULL DEFAULT now()
);
