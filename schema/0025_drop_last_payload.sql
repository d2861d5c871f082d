-- nodes.last_payload has not been written since a heartbeat's payload went to
-- node_observations alone (the latest is the one at the row's id and last_seq): drop it, so
-- that no reader takes the stale copy for the latest.
ALTER TABLE nodes DROP COLUMN last_payload;
