-- The ring 0 members and where each answers: its API and NATS URLs, for endpoints.json and the
-- CLI's failover, and the hash of its admin token, so every member accepts every member's
-- admin (an operator's CLI keeps working through another member when its own is down). A
-- member announces itself at start and every few seconds; seen says when it last did.
CREATE TABLE ring0_members (
    member      text PRIMARY KEY,
    api         text NOT NULL,
    nats        text NOT NULL,
    admin_hash  bytea NOT NULL CHECK (length(admin_hash) = 32),
    seen        timestamptz NOT NULL DEFAULT now()
);
