-- A port may be its network's router: the other ports there take their default route through
-- it. One network has at most one.
ALTER TABLE ports ADD COLUMN router boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX ports_one_router ON ports (network_id) WHERE router;
