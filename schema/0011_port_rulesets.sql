-- The rule sets a port enforces, recorded on the port: a rule naming a rule set as its remote
-- ("from rs:web") means the addresses of the tenant's ports that enforce that set.
ALTER TABLE ports ADD COLUMN rulesets text[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(rulesets) <= 8);
CREATE INDEX ports_rulesets ON ports USING gin (rulesets);
