-- The NATS accounts every ring 0 member signs from: each account's identity and signing
-- seeds, sealed (AES-256-GCM under a key derived from the operator signing key, which only
-- ring 0 members hold — the database alone yields no key), and its current JWT. A member
-- changes accounts only under a transaction-scoped advisory lock, after taking in what the
-- others wrote, and writes its changes back in that transaction: no member re-signs RING1's
-- imports without another's tenants, nor creates a second account for a tenant. A retired
-- account (its tenant deleted) keeps its row, so a member that still has it retires it too.
CREATE TABLE ring0_accounts (
    name     text PRIMARY KEY,
    public   text NOT NULL UNIQUE,
    sealed   bytea NOT NULL,
    jwt      text NOT NULL DEFAULT '',
    retired  timestamptz,
    updated  timestamptz NOT NULL DEFAULT now()
);
