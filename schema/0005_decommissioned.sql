-- A ring 1 node taken out of service for good (DELETE /v1/nodes/{id}): ring 0 revoked its bus
-- credentials and accepts none of its observations. Its record, keys and history stay, so
-- what it signed stays verifiable.
ALTER TABLE nodes DROP CONSTRAINT nodes_state_check;
ALTER TABLE nodes ADD CONSTRAINT nodes_state_check
    CHECK (state IN ('unknown', 'up', 'suspect', 'down', 'decommissioned'));
