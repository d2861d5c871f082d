-- The winning bid of each app's and VM's placement, as the host signed it (bus.SignedBid as JSON: the
-- bid's exact bytes, the host's attestation key, the signature), so a host that promised and
-- did not deliver is provable from the record, and `enjin verify` checks every one.
ALTER TABLE app_hosts ADD COLUMN bid bytea;
ALTER TABLE vms ADD COLUMN bid bytea;
