-- A host's DHCP server on a network holds a port of its own: dhcp:<node id>.
ALTER TABLE ports DROP CONSTRAINT ports_owner_check;
ALTER TABLE ports ADD CONSTRAINT ports_owner_check CHECK (owner ~ '^(vm|app|dhcp):[a-zA-Z0-9:/._-]{1,200}$');
