-- Observations one node makes of another: a ring 1 node reports on the ring 2 instances it
-- supervises (the probe strategy) inside its own signed heartbeat. Such a row is stored
-- under the observed node with the observer's name; the signature is the observer's, over
-- the observer's node id, so verification uses the observer's key. NULL: the node itself.
ALTER TABLE node_observations ADD COLUMN observer text;
