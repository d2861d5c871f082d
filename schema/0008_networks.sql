-- Tenant networks: L2 segments with a VXLAN id of their own, the ports on them (a VM's NIC or
-- an app instance's interface) and the addresses ring 0 hands those ports. The schema, not
-- only the Go that calls it, guarantees the rules: one VNI per network cloud-wide, no two
-- networks of a tenant overlapping, no address handed out twice on a network, every address
-- inside its network and never its network, broadcast or gateway address.

CREATE EXTENSION IF NOT EXISTS btree_gist; -- tenant equality beside CIDR overlap in one exclusion

CREATE TABLE networks (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    vni         integer NOT NULL UNIQUE CHECK (vni BETWEEN 4096 AND 16777215),
    cidr4       cidr NOT NULL CHECK (family(cidr4) = 4 AND masklen(cidr4) BETWEEN 8 AND 29),
    gateway4    inet NOT NULL,
    prefix6     cidr CHECK (prefix6 IS NULL OR (family(prefix6) = 6 AND masklen(prefix6) = 64)),
    dhcp        boolean NOT NULL DEFAULT false,
    metadata    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (id, tenant_id),
    CHECK (gateway4 << cidr4 AND masklen(gateway4) = 32
           AND host(gateway4) NOT IN (host(network(cidr4)), host(broadcast(cidr4)))),
    -- Another tenant may use the same addresses: its segment is another VNI.
    EXCLUDE USING gist (tenant_id WITH =, cidr4 inet_ops WITH &&),
    EXCLUDE USING gist (tenant_id WITH =, prefix6 inet_ops WITH &&)
);

-- VNIs are handed out from a sequence; 4096 and up leaves the low ones to the operator.
CREATE SEQUENCE networks_vni START WITH 4096 MINVALUE 4096 MAXVALUE 16777215;

CREATE TABLE ports (
    id          uuid PRIMARY KEY,
    network_id  uuid NOT NULL,
    tenant_id   text NOT NULL,
    mac         macaddr NOT NULL,
    owner       text NOT NULL CHECK (owner ~ '^(vm|app):[a-z0-9:/.-]{1,200}$'), -- vm:<id> or app:<instance id>
    node_id     text REFERENCES nodes (id),  -- the ring 1 node the port is on, once placed
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (network_id, tenant_id) REFERENCES networks (id, tenant_id) ON DELETE RESTRICT,
    UNIQUE (network_id, mac),
    UNIQUE (id, network_id)
);

CREATE INDEX ports_owner ON ports (owner);

CREATE TABLE port_addresses (
    port_id     uuid NOT NULL,
    network_id  uuid NOT NULL,
    address     inet NOT NULL CHECK (masklen(address) = CASE family(address) WHEN 4 THEN 32 ELSE 128 END),
    FOREIGN KEY (port_id, network_id) REFERENCES ports (id, network_id) ON DELETE CASCADE,
    PRIMARY KEY (network_id, address)  -- one address, one port, whatever Go does
);

CREATE INDEX port_addresses_port ON port_addresses (port_id);

-- An address must lie in its network and be none of its network, broadcast or gateway
-- addresses: checked against the network row, which a CHECK cannot see.
CREATE FUNCTION port_address_in_network() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n networks%ROWTYPE;
BEGIN
    SELECT * INTO n FROM networks WHERE id = NEW.network_id;
    IF family(NEW.address) = 4 THEN
        IF NOT (NEW.address << n.cidr4) OR host(NEW.address) IN (host(network(n.cidr4)), host(broadcast(n.cidr4)), host(n.gateway4)) THEN
            RAISE EXCEPTION 'address % is not a host address of network % (%)', host(NEW.address), n.name, n.cidr4
                USING ERRCODE = 'check_violation';
        END IF;
    ELSIF n.prefix6 IS NULL OR NOT (NEW.address << n.prefix6) THEN
        RAISE EXCEPTION 'address % is not in network %''s IPv6 prefix', host(NEW.address), n.name
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER port_addresses_in_network BEFORE INSERT OR UPDATE ON port_addresses
    FOR EACH ROW EXECUTE FUNCTION port_address_in_network();
