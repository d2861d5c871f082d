package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"

	"enjin"
	"enjin/services/images"
	"enjin/services/inventory"
)

// VM images: uploads go to ring 0's image store (package images), which proves them harmless
// before it keeps them; the records are the inventory's. A tenant's identity reaches public
// images and its own tenant's, and changes only its own; public images are the admin's.

type imageList struct {
	Images []inventory.Image `json:"images"`
}

var (
	nameParam   = param{"name", strSchema, "the image's name: a slug, unique among its owner's images (not a UUID)"}
	tenantParam = param{"tenant", strSchema, "the tenant owning the image; left out, a public image (admin) or the caller's tenant's"}
)

func (a *API) imageRoutes() []route {
	rs := []route{
		{method: "GET", path: "/v1/images", access: reader, summary: "List images: a tenant sees public ones and its own, others see all",
			query: []param{
				{"tenant", strSchema, "only this tenant's images"},
				{"public", intSchema(0, 1), "1: only public images"},
				{"name", strSchema, "only images of this name"},
			}, status: http.StatusOK, out: imageList{}, serve: a.listImages},
		{method: "POST", path: "/v1/images", access: admin, summary: "Upload a disk image (the body, streamed) in the declared format; it is checked as hostile (no backing or data file, the declared format, size limits, intact) and stored as a standalone qcow2; 422 names why one is refused",
			query:   []param{nameParam, {"format", map[string]any{"type": "string", "enum": []string{"raw", "qcow2"}}, "the image's format, required: it is never guessed"}, tenantParam},
			rawBody: "application/octet-stream", status: http.StatusCreated, out: inventory.Image{}, serve: a.uploadImage},
		{method: "POST", path: "/v1/images/kernel", access: admin, summary: "Upload a kernel (a bzImage) and its initramfs (gzip, zstd, xz or cpio) as one image: multipart/form-data with the parts kernel, then initrd, streamed",
			query: []param{nameParam, tenantParam}, rawBody: "multipart/form-data", status: http.StatusCreated, out: inventory.Image{}, serve: a.uploadKernel},
		{method: "GET", path: "/v1/images/{image}", access: reader, summary: "An image's record",
			status: http.StatusOK, out: inventory.Image{}, serve: a.getImage},
		{method: "DELETE", path: "/v1/images/{image}", access: admin, summary: "Delete an image: the admin any, a tenant its own; its file goes when no image record names it",
			status: http.StatusNoContent, serve: a.deleteImage},
		{method: "GET", path: "/v1/images/{image}/content", access: admin, summary: "An image's stored bytes, for ring 1 to fetch by digest (the ETag): a disk's qcow2, or a kernel pair's part",
			query:  []param{{"part", map[string]any{"type": "string", "enum": []string{"kernel", "initrd"}}, "of a kernel image, which file: required"}},
			rawOut: "application/octet-stream", status: http.StatusOK, serve: a.imageContent},
	}
	for i := range rs {
		rs[i].tenantOwn = rs[i].path != "/v1/images/{image}/content"
	}
	return rs
}

// errNoImages answers image routes on a ring 0 whose image store could not start.
var errNoImages = &apiError{http.StatusServiceUnavailable, "unavailable", "this ring 0 keeps no images: its image store did not start (see its log)"}

func (a *API) listImages(c *call) error {
	t, hasTenant := c.q.vals["tenant"]
	public, err := c.q.intParam("public", 0, 1, 0)
	if err != nil {
		return err
	}
	switch {
	case hasTenant && !enjin.IsSlug(t):
		return badRequest("bad_query", "tenant %q: want a slug", trunc(t, 80))
	case hasTenant && public == 1:
		return badRequest("bad_query", "tenant and public=1 select different images: give one")
	case hasTenant && c.id.Tenant != "" && enjin.TenantID(t) != c.id.Tenant:
		return &apiError{http.StatusForbidden, "forbidden", fmt.Sprintf("%s may not reach tenant %q", c.id.Name, t)}
	}
	f := inventory.ImageFilter{Name: c.q.vals["name"]}
	switch {
	case hasTenant:
		f.Owners = []enjin.TenantID{enjin.TenantID(t)}
	case public == 1:
		f.Owners = []enjin.TenantID{""}
	case c.id.Tenant != "":
		f.Owners = []enjin.TenantID{"", c.id.Tenant}
	}
	ims, err := a.store.ListImages(c.ctx, f)
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, imageList{Images: nonNil(ims)})
	return nil
}

// image reads the image in the path, as the caller may see it: a tenant's identity sees
// only public images and its own tenant's, and is told others do not exist.
func (a *API) image(c *call) (inventory.Image, error) {
	im, err := a.store.GetImage(c.ctx, c.path["image"])
	if err == nil && c.id.Tenant != "" && !im.Public && im.Tenant != c.id.Tenant {
		err = fmt.Errorf("image %s: %w", c.path["image"], inventory.ErrNotFound)
	}
	return im, err
}

func (a *API) getImage(c *call) error {
	im, err := a.image(c)
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, im)
	return nil
}

func (a *API) deleteImage(c *call) error {
	if a.images == nil {
		return errNoImages
	}
	im, err := a.image(c)
	if err != nil {
		return err
	}
	if im.Public && c.id.Tenant != "" {
		return &apiError{http.StatusForbidden, "forbidden", fmt.Sprintf("%s may not delete public image %q: only the admin manages public images", c.id.Name, im.Name)}
	}
	if _, err := a.store.DeleteImage(c.ctx, im.ID); err != nil {
		return err
	}
	// The file goes if no other record names it; if it cannot, ring 0's sweep retries.
	if err := a.images.Delete(im.Digest, a.digestUsed(c.ctx)); err != nil {
		a.log.Warn("image file not deleted", "image", im.ID, "digest", im.Digest, "err", err)
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) digestUsed(ctx context.Context) func(string) (bool, error) {
	return func(d string) (bool, error) { return a.store.ImageDigestUsed(ctx, d) }
}

// upload is what both upload routes check before reading a byte of the body: the owner
// (which the caller must be allowed to write to), the name, the body's type and declared
// length, and that the name is free.
func (a *API) upload(c *call, mediaType string, limit int64) (name string, owner enjin.TenantID, err error) {
	if a.images == nil {
		return "", "", errNoImages
	}
	if owner, err = a.imageOwner(c); err != nil {
		return "", "", err
	}
	name = c.q.vals["name"]
	if !enjin.IsSlug(name) || enjin.IsUUID(name) {
		return "", "", badRequest("bad_query", "name %q: want a slug (lowercase letters, digits and inner hyphens) that is not a UUID", trunc(name, 80))
	}
	if mt, _, err := mime.ParseMediaType(c.r.Header.Get("Content-Type")); err != nil || mt != mediaType {
		return "", "", &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("Content-Type %q is not accepted: send the image as %s", trunc(c.r.Header.Get("Content-Type"), 100), mediaType)}
	}
	if c.r.ContentLength > limit {
		return "", "", &apiError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body of %d bytes: the limit is %d", c.r.ContentLength, limit)}
	}
	taken, err := a.store.ListImages(c.ctx, inventory.ImageFilter{Owners: []enjin.TenantID{owner}, Name: name})
	if err != nil {
		return "", "", err
	}
	if len(taken) > 0 {
		return "", "", &apiError{http.StatusConflict, "exists", fmt.Sprintf("%s already has an image named %q", ownerName(owner), name)}
	}
	return name, owner, nil
}

// imageOwner is the tenant an upload is for: the caller's own for a tenant's identity (which
// may name it, and no other), else the tenant named, or none for a public image.
func (a *API) imageOwner(c *call) (enjin.TenantID, error) {
	t, given := c.q.vals["tenant"]
	switch {
	case given && !enjin.IsSlug(t):
		return "", badRequest("bad_query", "tenant %q: want a slug", trunc(t, 80))
	case c.id.Tenant != "" && given && enjin.TenantID(t) != c.id.Tenant:
		return "", &apiError{http.StatusForbidden, "forbidden", fmt.Sprintf("%s may not reach tenant %q", c.id.Name, t)}
	case c.id.Tenant != "":
		return c.id.Tenant, nil
	case given:
		_, err := a.store.GetTenant(c.ctx, enjin.TenantID(t))
		return enjin.TenantID(t), err
	}
	return "", nil
}

func ownerName(t enjin.TenantID) string {
	if t == "" {
		return "the public"
	}
	return "tenant " + string(t)
}

func (a *API) uploadImage(c *call) error {
	name, owner, err := a.upload(c, "application/octet-stream", a.imageLimits.MaxUpload)
	if err != nil {
		return err
	}
	f, ok := c.q.vals["format"]
	if !ok {
		return badRequest("bad_query", "format is required: raw or qcow2 (an image's format is never guessed)")
	}
	format, err := images.ParseFormat(f)
	if err != nil {
		return badRequest("bad_query", "format %q: want raw or qcow2", trunc(f, 40))
	}
	w, done := streaming(c.w, c.r)
	defer done()
	var rec inventory.Image
	_, err = a.images.Put(c.ctx, c.r.Body, format, a.imageLimits, func(img images.Image) (err error) {
		rec, err = a.store.CreateImage(c.ctx, inventory.Image{Name: name, Tenant: owner, Kind: string(img.Kind),
			Format: "qcow2", SourceFormat: string(img.Source), Size: img.Size, VirtualSize: img.VirtualSize, Digest: img.Digest})
		return err
	})
	if err != nil {
		return a.refusal(c, owner, name, err)
	}
	c.w = w
	a.imageCreated(c, rec)
	return nil
}

func (a *API) uploadKernel(c *call) error {
	lim := a.imageLimits
	name, owner, err := a.upload(c, "multipart/form-data", lim.MaxKernel+lim.MaxInitrd+1<<20)
	if err != nil {
		return err
	}
	_, params, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if params["boundary"] == "" {
		return &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type", "multipart/form-data without a boundary"}
	}
	w, done := streaming(c.w, c.r)
	defer done()
	mr := multipart.NewReader(c.r.Body, params["boundary"])
	kernel := &formPart{mr: mr, name: "kernel"}
	initrd := &formPart{mr: mr, name: "initrd", last: true}
	var rec inventory.Image
	_, err = a.images.PutKernel(c.ctx, kernel, initrd, lim, func(img images.Image) (err error) {
		rec, err = a.store.CreateImage(c.ctx, inventory.Image{Name: name, Tenant: owner, Kind: string(img.Kind),
			Format: "bzimage", SourceFormat: "bzimage", Size: img.Size, Digest: img.Digest,
			Kernel: &inventory.ImageFile{Digest: img.Kernel.Digest, Size: img.Kernel.Size},
			Initrd: &inventory.ImageFile{Digest: img.Initrd.Digest, Size: img.Initrd.Size}})
		return err
	})
	if err != nil {
		return a.refusal(c, owner, name, err)
	}
	c.w = w
	a.imageCreated(c, rec)
	return nil
}

// refusal logs an upload the store refused, which is a tenant's attempt worth a line.
func (a *API) refusal(c *call, owner enjin.TenantID, name string, err error) error {
	if re, ok := errors.AsType[*images.RefusedError](err); ok {
		a.log.Info("image refused", "tenant", owner, "name", name, "caller", c.id.Name, "reason", re.Reason)
	}
	return err
}

func (a *API) imageCreated(c *call, im inventory.Image) {
	c.w.Header().Set("Location", "/v1/images/"+im.ID)
	a.reply(c.w, http.StatusCreated, im)
}

// formPart reads one part of a multipart form, in order: the first Read takes the next part,
// which must be the one named; after the last, the form must end.
type formPart struct {
	mr   *multipart.Reader
	name string
	last bool
	p    *multipart.Part
	err  error
}

func (f *formPart) Read(b []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.p == nil {
		p, err := f.mr.NextPart()
		switch {
		case errors.Is(err, io.EOF):
			f.err = fmt.Errorf("the form has no part %q: send the parts kernel, then initrd", f.name)
		case err != nil:
			f.err = err
		case p.FormName() != f.name:
			f.err = fmt.Errorf("part %q where %q belongs: send the parts kernel, then initrd", trunc(p.FormName(), 40), f.name)
		}
		if f.err != nil {
			return 0, f.err
		}
		f.p = p
	}
	n, err := f.p.Read(b)
	if errors.Is(err, io.EOF) && f.last {
		if p, perr := f.mr.NextPart(); !errors.Is(perr, io.EOF) {
			f.err = fmt.Errorf("more than the parts kernel and initrd in the form")
			if perr == nil {
				f.err = fmt.Errorf("part %q after initrd: send only the parts kernel and initrd", trunc(p.FormName(), 40))
			}
			return n, f.err
		}
	}
	return n, err
}

func (a *API) imageContent(c *call) error {
	if a.images == nil {
		return errNoImages
	}
	im, err := a.image(c)
	if err != nil {
		return err
	}
	part, hasPart := c.q.vals["part"]
	var p images.Part
	var tag string
	switch {
	case im.Kind == string(images.Disk) && hasPart:
		return badRequest("bad_query", "part: a disk image is one file; part is for kernel images")
	case im.Kind == string(images.Disk):
		p, tag = images.PartDisk, im.Digest
	case part == "kernel" && im.Kernel != nil:
		p, tag = images.PartKernel, im.Kernel.Digest
	case part == "initrd" && im.Initrd != nil:
		p, tag = images.PartInitrd, im.Initrd.Digest
	default:
		return badRequest("bad_query", "part %q: a kernel image has the parts kernel and initrd", trunc(part, 40))
	}
	f, err := a.images.Open(im.Digest, p)
	if err != nil {
		return err
	}
	defer f.Close()
	w, done := streaming(c.w, c.r)
	defer done()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", strconv.Quote(tag))
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", im.Name+"."+string(p)))
	http.ServeContent(w, c.r, "", im.CreatedAt, f)
	return nil
}
