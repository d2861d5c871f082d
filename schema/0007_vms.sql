-- Virtual machines: machine types (the sizes a VM comes in), tenants' VMs and their volumes.
-- Ring 0 records what is wanted and where it runs; the ring 1 node it is placed on realizes it
-- through libvirt and reports what it observes.

CREATE TABLE machine_types (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    vcpus       integer NOT NULL CHECK (vcpus BETWEEN 1 AND 64),
    memory_mb   integer NOT NULL CHECK (memory_mb BETWEEN 64 AND 1048576),
    disk_gb     integer NOT NULL CHECK (disk_gb BETWEEN 1 AND 16384),
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO machine_types (name, vcpus, memory_mb, disk_gb) VALUES
    ('tiny', 1, 128, 1),
    ('small', 1, 512, 10),
    ('medium', 2, 2048, 20),
    ('large', 4, 8192, 40);

CREATE TABLE vms (
    id              uuid PRIMARY KEY,   -- also its name as a ring 2 node
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    image           text NOT NULL,      -- the image's id
    machine_type    text NOT NULL REFERENCES machine_types (name),
    node_id         text NOT NULL REFERENCES nodes (id),
    desired_state   text NOT NULL DEFAULT 'running' CHECK (desired_state IN ('running', 'stopped')),
    observed_state  text NOT NULL DEFAULT 'pending',
    addresses       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(addresses) = 'array'), -- as its node last said
    spec            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(spec) = 'object'), -- networks, ssh keys, user data, NICs
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    version         bigint NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE INDEX vms_node ON vms (node_id);

CREATE TABLE volumes (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    size_gb     integer NOT NULL CHECK (size_gb BETWEEN 1 AND 16384),
    node_id     text NOT NULL REFERENCES nodes (id), -- a volume lives on one ring 1 node
    vm_id       uuid REFERENCES vms (id) ON DELETE SET NULL,
    metadata    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- A volume attached to a VM lives where the VM runs.
CREATE FUNCTION volume_on_vm_node() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.vm_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM vms v WHERE v.id = NEW.vm_id AND v.node_id = NEW.node_id AND v.tenant_id = NEW.tenant_id) THEN
        RAISE EXCEPTION 'volume % and vm % are not of one tenant on one node', NEW.id, NEW.vm_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER volumes_on_vm_node BEFORE INSERT OR UPDATE ON volumes
    FOR EACH ROW EXECUTE FUNCTION volume_on_vm_node();
