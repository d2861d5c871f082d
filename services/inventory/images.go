package inventory

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// Image is the record of a VM image whose files ring 0's image store holds by digest. It
// belongs to a tenant, or is public (Tenant ""). Images are immutable: created, then deleted.
type Image struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	Tenant       enjin.TenantID `json:"tenant,omitempty"` // "" for a public image
	Public       bool           `json:"public"`
	Kind         string         `json:"kind"`          // disk or kernel
	Format       string         `json:"format"`        // as stored and served: qcow2 (disk) or bzimage (kernel)
	SourceFormat string         `json:"source_format"` // as uploaded: raw or qcow2 (disk), bzimage (kernel)
	Size         int64          `json:"size"`          // bytes stored (a kernel's with its initramfs)
	VirtualSize  int64          `json:"virtual_size,omitempty"`
	Digest       string         `json:"digest"`           // names the stored file(s)
	Kernel       *ImageFile     `json:"kernel,omitempty"` // a kernel pair's parts
	Initrd       *ImageFile     `json:"initrd,omitempty"`
	CreatedAt    time.Time      `json:"created_at"`
}

// ImageFile is one part of a kernel pair.
type ImageFile struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// ImageFilter selects images. The zero value selects every one.
type ImageFilter struct {
	Owners []enjin.TenantID // only images of these owners ("" is public); nil: any owner
	Name   string           // only images of this name
}

const imageCols = `id::text, coalesce(tenant_id, ''), name, kind, format, source_format, size, coalesce(virtual_size, 0),
	digest, coalesce(kernel_digest, ''), coalesce(kernel_size, 0), coalesce(initrd_digest, ''), coalesce(initrd_size, 0), created_at`

func scanImage(r pgx.Row) (Image, error) {
	var im Image
	var tenant string
	var k, i ImageFile
	err := r.Scan(&im.ID, &tenant, &im.Name, &im.Kind, &im.Format, &im.SourceFormat, &im.Size, &im.VirtualSize,
		&im.Digest, &k.Digest, &k.Size, &i.Digest, &i.Size, &im.CreatedAt)
	im.Tenant, im.Public = enjin.TenantID(tenant), tenant == ""
	if k.Digest != "" {
		im.Kernel, im.Initrd = &k, &i
	}
	return im, err
}

// CreateImage records im with a new id. A name its owner already uses is ErrExists; an
// unknown tenant, or a record breaking the table's rules, is ErrInvalid.
func (s *Store) CreateImage(ctx context.Context, im Image) (Image, error) {
	im.ID = NewID()
	var kd, id *string
	var ks, is *int64
	if im.Kernel != nil && im.Initrd != nil {
		kd, ks, id, is = &im.Kernel.Digest, &im.Kernel.Size, &im.Initrd.Digest, &im.Initrd.Size
	}
	out, err := scanImage(s.pool.QueryRow(ctx, `INSERT INTO images (id, tenant_id, name, kind, format, source_format,
			size, virtual_size, digest, kernel_digest, kernel_size, initrd_digest, initrd_size)
		VALUES ($1, nullif($2, ''), $3, $4, $5, $6, $7, nullif($8, 0), $9, $10, $11, $12, $13)
		RETURNING `+imageCols,
		im.ID, string(im.Tenant), im.Name, im.Kind, im.Format, im.SourceFormat, im.Size, im.VirtualSize, im.Digest, kd, ks, id, is))
	return out, pgErr("create image "+im.Name, err)
}

// GetImage returns image id.
func (s *Store) GetImage(ctx context.Context, id string) (Image, error) {
	im, err := scanImage(s.pool.QueryRow(ctx, `SELECT `+imageCols+` FROM images WHERE id = $1`, id))
	return im, pgErr("image "+id, err)
}

// ListImages returns the images f selects: public ones first, then by tenant and name.
func (s *Store) ListImages(ctx context.Context, f ImageFilter) ([]Image, error) {
	var owners []string
	if f.Owners != nil {
		owners = make([]string, 0, len(f.Owners))
		for _, o := range f.Owners {
			owners = append(owners, string(o))
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT `+imageCols+` FROM images
		WHERE ($1::text[] IS NULL OR coalesce(tenant_id, '') = ANY($1)) AND ($2 = '' OR name = $2)
		ORDER BY coalesce(tenant_id, ''), name LIMIT 10000`, owners, f.Name)
	if err != nil {
		return nil, pgErr("list images", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Image, error) { return scanImage(r) })
	return out, pgErr("list images", err)
}

// DeleteImage deletes image id and returns what it was.
func (s *Store) DeleteImage(ctx context.Context, id string) (Image, error) {
	im, err := scanImage(s.pool.QueryRow(ctx, `DELETE FROM images WHERE id = $1 RETURNING `+imageCols, id))
	return im, pgErr("delete image "+id, err)
}

// ImageDigestUsed reports whether any image record names digest.
func (s *Store) ImageDigestUsed(ctx context.Context, digest string) (bool, error) {
	var used bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM images WHERE digest = $1)`, digest).Scan(&used)
	return used, pgErr("image digest", err)
}
