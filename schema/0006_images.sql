-- VM images: records of what ring 0's content-addressed image store holds. The
-- files are named by digest; several records (owners, names) may share one. An image belongs
-- to a tenant, or to nobody (tenant_id NULL): a public image, which only the admin manages.
-- Images are immutable: created whole after the store proved them harmless, then deleted.
CREATE TABLE images (
    id             uuid PRIMARY KEY,
    tenant_id      text REFERENCES tenants (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    kind           text NOT NULL CHECK (kind IN ('disk', 'kernel')),
    format         text NOT NULL CHECK (format IN ('qcow2', 'bzimage')),          -- as stored
    source_format  text NOT NULL CHECK (source_format IN ('raw', 'qcow2', 'bzimage')), -- as uploaded
    size           bigint NOT NULL CHECK (size > 0),                                 -- bytes stored
    virtual_size   bigint CHECK (virtual_size > 0),
    digest         text NOT NULL CHECK (digest ~ '^sha256-[0-9a-f]{64}$'),
    kernel_digest  text CHECK (kernel_digest ~ '^sha256-[0-9a-f]{64}$'),
    kernel_size    bigint CHECK (kernel_size > 0),
    initrd_digest  text CHECK (initrd_digest ~ '^sha256-[0-9a-f]{64}$'),
    initrd_size    bigint CHECK (initrd_size > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'disk' AND format = 'qcow2' AND source_format IN ('raw', 'qcow2') AND virtual_size IS NOT NULL
               AND kernel_digest IS NULL AND initrd_digest IS NULL
        OR kind = 'kernel' AND format = 'bzimage' AND source_format = 'bzimage' AND virtual_size IS NULL
               AND kernel_digest IS NOT NULL AND kernel_size IS NOT NULL
               AND initrd_digest IS NOT NULL AND initrd_size IS NOT NULL)
);
-- Names are unique per owner; public images are one owner.
CREATE UNIQUE INDEX images_owner_name ON images (coalesce(tenant_id, ''), name);
CREATE INDEX images_tenant ON images (tenant_id);
CREATE INDEX images_digest ON images (digest);
