-- A network whose ports reach beyond it through ring 1's NAT gateway: on every host that
-- carries it, the host answers at the gateway address and masquerades what the ports'
-- rule sets let out.
ALTER TABLE networks ADD COLUMN nat boolean NOT NULL DEFAULT false;
