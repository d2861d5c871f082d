package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"enjin"
	"enjin/services/inventory"
)

func imagesCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "images",
		Short: "upload VM images (checked as hostile, stored as standalone qcow2) and manage them",
		Long: `Upload disk images and kernel + initramfs pairs to ring 0's image store, and manage them.
Ring 0 refuses an image that names a backing or data file, is not the format declared, is
larger than its limits or is damaged, and says why. An image is public (the admin's) or a
tenant's; verbs name one by its ID, by NAME (a public image) or by TENANT/NAME.`,
		Example: `  enjin images upload disk.img --name debian --format raw
  enjin images upload disk.qcow2 --name tools --format qcow2 --tenant acme
  enjin images upload --kernel vmlinuz --initrd initrd.img --name direct
  enjin images ls
  enjin images show acme/tools
  enjin images rm debian`,
	}
	c.AddCommand(imagesUploadCmd(g), imagesLsCmd(g), imagesShowCmd(g), imagesRmCmd(g))
	return c
}

// upload is what images upload sends.
type upload struct {
	file, kernel, initrd string
	name, format, tenant string
}

// check reads the command line's two forms: FILE with --format, or --kernel with --initrd.
func (u *upload) check(args []string) error {
	if len(args) == 1 {
		u.file = args[0]
	}
	switch {
	case !enjin.IsSlug(u.name) || enjin.IsUUID(u.name):
		return usagef("images upload: --name: want a slug that is not a UUID")
	case u.tenant != "" && enjin.TenantID(u.tenant).Validate() != nil:
		return usagef("images upload: --tenant %q: want a tenant name (a slug)", u.tenant)
	case u.kernel != "" || u.initrd != "":
		if u.kernel == "" || u.initrd == "" || u.file != "" || u.format != "" {
			return usagef("images upload: --kernel and --initrd go together, without FILE or --format")
		}
	case u.file == "":
		return usagef("images upload: want FILE --format raw|qcow2, or --kernel K --initrd I")
	case u.format != "raw" && u.format != "qcow2":
		return usagef("images upload: --format: want raw or qcow2 (an image's format is never guessed)")
	}
	return nil
}

func (u *upload) query() string {
	q := url.Values{"name": {u.name}}
	if u.format != "" {
		q.Set("format", u.format)
	}
	if u.tenant != "" {
		q.Set("tenant", u.tenant)
	}
	return q.Encode()
}

func imagesUploadCmd(g *globals) *cobra.Command {
	var u upload
	var quiet bool
	c := &cobra.Command{
		Use:   "upload FILE --name NAME --format raw|qcow2 | upload --kernel KERNEL --initrd INITRD --name NAME",
		Short: "upload a disk image, or a kernel and its initramfs",
		Long: `Upload a disk image in the format it is in (raw or qcow2: never guessed), or a kernel (a
bzImage) and its initramfs, as an image named NAME: public (admin only) or, with --tenant or
a tenant's token, the tenant's. Ring 0 checks it as hostile before it keeps it, and refuses
it with the reason. Progress goes to stderr (-q silences it); the stored image to stdout.`,
		Example: `  enjin images upload disk.img --name debian --format raw
  enjin images upload disk.qcow2 --name tools --format qcow2 --tenant acme -q
  enjin images upload --kernel vmlinuz --initrd initrd.img --name direct`,
		Args: argsBetween(0, 1, "FILE, or --kernel and --initrd"),
	}
	f := c.Flags()
	f.StringVar(&u.name, "name", "", "the image's name (a slug)")
	f.StringVar(&u.format, "format", "", "FILE's format: raw or qcow2")
	f.StringVar(&u.tenant, "tenant", "", "the tenant owning the image (default: public, or the token's tenant)")
	f.StringVar(&u.kernel, "kernel", "", "a kernel (bzImage), with --initrd")
	f.StringVar(&u.initrd, "initrd", "", "the kernel's initramfs, with --kernel")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress on stderr")
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		if err := u.check(args); err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		progress := c.ErrOrStderr()
		if quiet {
			progress = io.Discard
		}
		var im inventory.Image
		if u.kernel != "" {
			im, err = uploadKernel(c.Context(), cl, &u, progress)
		} else {
			im, err = uploadDisk(c.Context(), cl, &u, progress)
		}
		if err != nil {
			return err
		}
		if out.json() {
			return writeJSON(c.OutOrStdout(), im)
		}
		_, err = fmt.Fprintf(c.OutOrStdout(), "stored image %s: %s (%s)\n", imageRef(im), im.ID, describe(im))
		return err
	}
	return c
}

func uploadDisk(ctx context.Context, cl *client, u *upload, progress io.Writer) (inventory.Image, error) {
	f, err := os.Open(u.file)
	if err != nil {
		return inventory.Image{}, fmt.Errorf("upload: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return inventory.Image{}, fmt.Errorf("upload: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return inventory.Image{}, fmt.Errorf("upload %s: not a regular file", u.file)
	}
	fmt.Fprintf(progress, "uploading %s, %s\n", filepath.Base(u.file), size(fi.Size()))
	body := &sent{r: f, progress: progress}
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	return postImage(ctx, cl, "/v1/images?"+u.query(), hdr, body, fi.Size(), "upload "+filepath.Base(u.file))
}

// uploadKernel streams both files as one multipart form, kernel first.
func uploadKernel(ctx context.Context, cl *client, u *upload, progress io.Writer) (inventory.Image, error) {
	var files []*os.File
	for _, p := range []string{u.kernel, u.initrd} {
		f, err := os.Open(p)
		if err != nil {
			return inventory.Image{}, fmt.Errorf("upload: %w", err)
		}
		defer f.Close()
		files = append(files, f)
	}
	fmt.Fprintf(progress, "uploading %s and %s\n", filepath.Base(u.kernel), filepath.Base(u.initrd))
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() { // ends when both files are written, or the request stops reading
		err := writeForm(mw, files, []string{"kernel", "initrd"})
		pw.CloseWithError(err)
	}()
	defer pr.Close() // a request that failed early stops the writer
	hdr := http.Header{"Content-Type": {mw.FormDataContentType()}}
	return postImage(ctx, cl, "/v1/images/kernel?"+u.query(), hdr, &sent{r: pr, progress: progress}, -1, "upload "+filepath.Base(u.kernel))
}

func writeForm(mw *multipart.Writer, files []*os.File, names []string) error {
	for i, f := range files {
		w, err := mw.CreateFormFile(names[i], filepath.Base(f.Name()))
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
	}
	return mw.Close()
}

// postImage posts an image body of length bytes (-1: unknown) and reads the stored image.
func postImage(ctx context.Context, cl *client, path string, hdr http.Header, body *sent, length int64, what string) (inventory.Image, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", cl.base+path, body)
	if err != nil {
		return inventory.Image{}, err
	}
	req.ContentLength = length
	if length == 0 {
		req.Body = http.NoBody
	}
	req.Header = hdr
	resp, err := cl.sendRequest(req, cl.stream)
	if err != nil {
		return inventory.Image{}, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	var im inventory.Image
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&im); err != nil || im.ID == "" {
		return im, fmt.Errorf("%s: unreadable answer: %v", what, err)
	}
	return im, nil
}

// sent is an upload's body: it says on progress when the last byte went.
type sent struct {
	r        io.Reader
	progress io.Writer
	n        int64
	done     bool
}

func (s *sent) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if err == io.EOF && !s.done {
		s.done = true
		fmt.Fprintf(s.progress, "uploaded %s; ring 0 is checking it\n", size(s.n))
	}
	return n, err
}

// size prints a byte count for people.
func size(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// imageRef is how an image is named: NAME if public, else TENANT/NAME.
func imageRef(im inventory.Image) string {
	if im.Public {
		return im.Name
	}
	return string(im.Tenant) + "/" + im.Name
}

func describe(im inventory.Image) string {
	if im.Kind == "kernel" {
		return fmt.Sprintf("kernel %s, initramfs %s, %s", size(im.Kernel.Size), size(im.Initrd.Size), shortDigest(im.Digest))
	}
	return fmt.Sprintf("qcow2 from %s, %s virtual, %s", im.SourceFormat, size(im.VirtualSize), shortDigest(im.Digest))
}

func imagesLsCmd(g *globals) *cobra.Command {
	var tenant string
	var public bool
	c := &cobra.Command{Use: "ls", Short: "list images: public ones and tenants' (a tenant's token: public ones and its own)",
		Example: "  enjin images ls\n  enjin images ls --tenant acme -o json", Args: argsBetween(0, 0, "no arguments")}
	c.Flags().StringVar(&tenant, "tenant", "", "only this tenant's images")
	c.Flags().BoolVar(&public, "public", false, "only public images")
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		q := url.Values{}
		switch {
		case tenant != "" && public:
			return usagef("images ls: --tenant and --public select different images: give one")
		case tenant != "" && enjin.TenantID(tenant).Validate() != nil:
			return usagef("images ls: --tenant %q: want a tenant name (a slug)", tenant)
		case tenant != "":
			q.Set("tenant", tenant)
		case public:
			q.Set("public", "1")
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		path := "/v1/images"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		r, written, err := getList[struct{ Images []inventory.Image }](c, cl, out, path)
		if err != nil || written {
			return err
		}
		tw := newTable(c.OutOrStdout(), "IMAGE\tKIND\tSIZE\tVIRTUAL\tDIGEST\tCREATED\tID")
		for _, im := range r.Images {
			virtual := "-"
			if im.VirtualSize > 0 {
				virtual = size(im.VirtualSize)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", imageRef(im), im.Kind, size(im.Size), virtual, shortDigest(im.Digest),
				im.CreatedAt.Local().Format(time.DateTime), im.ID)
		}
		return tw.Flush()
	}
	return c
}

// imageQuery is an image named on the command line: its ID, or the query finding it by name.
type imageQuery struct {
	arg string
	id  string
	q   url.Values
}

// parseImageRef reads ID, NAME (a public image) or TENANT/NAME.
func parseImageRef(verb, ref string) (imageQuery, error) {
	if id := strings.ToLower(ref); enjin.IsUUID(id) {
		return imageQuery{arg: ref, id: id}, nil
	}
	t, n, scoped := strings.Cut(ref, "/")
	switch {
	case scoped && enjin.TenantID(t).Validate() == nil && enjin.IsSlug(n):
		return imageQuery{arg: ref, q: url.Values{"tenant": {t}, "name": {n}}}, nil
	case !scoped && enjin.IsSlug(ref):
		return imageQuery{arg: ref, q: url.Values{"public": {"1"}, "name": {ref}}}, nil
	}
	return imageQuery{}, usagef("images %s: %q: want an image ID, NAME (a public image) or TENANT/NAME", verb, ref)
}

// find returns the image iq names.
func (iq imageQuery) find(ctx context.Context, cl *client) (inventory.Image, error) {
	var im inventory.Image
	if iq.id != "" {
		err := cl.get(ctx, "/v1/images/"+iq.id, &im)
		return im, err
	}
	var r struct{ Images []inventory.Image }
	if err := cl.get(ctx, "/v1/images?"+iq.q.Encode(), &r); err != nil {
		return im, err
	}
	if len(r.Images) != 1 {
		return im, fmt.Errorf("no image %s (see enjin images ls)", iq.arg)
	}
	return r.Images[0], nil
}

func imagesShowCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "show ID|NAME|TENANT/NAME", Short: "show an image's record",
		Example: "  enjin images show debian\n  enjin images show acme/tools -o json", Args: argsBetween(1, 1, "an image ID, NAME or TENANT/NAME")}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		iq, err := parseImageRef("show", args[0])
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		im, err := iq.find(c.Context(), cl)
		if err != nil {
			return err
		}
		if out.json() {
			return writeJSON(c.OutOrStdout(), im)
		}
		return showImage(c.OutOrStdout(), im)
	}
	return c
}

func showImage(w io.Writer, im inventory.Image) error {
	owner := "public"
	if !im.Public {
		owner = "tenant " + string(im.Tenant)
	}
	tw := newTable(w, "FIELD\tVALUE")
	fmt.Fprintf(tw, "id\t%s\nname\t%s\nowner\t%s\nkind\t%s\nformat\t%s (uploaded as %s)\nsize\t%s (%d bytes)\n",
		im.ID, im.Name, owner, im.Kind, im.Format, im.SourceFormat, size(im.Size), im.Size)
	if im.VirtualSize > 0 {
		fmt.Fprintf(tw, "virtual size\t%s (%d bytes)\n", size(im.VirtualSize), im.VirtualSize)
	}
	fmt.Fprintf(tw, "digest\t%s\n", im.Digest)
	if im.Kernel != nil && im.Initrd != nil {
		fmt.Fprintf(tw, "kernel\t%s, %s\ninitramfs\t%s, %s\n", im.Kernel.Digest, size(im.Kernel.Size), im.Initrd.Digest, size(im.Initrd.Size))
	}
	fmt.Fprintf(tw, "created\t%s\n", im.CreatedAt.Local().Format(time.DateTime))
	return tw.Flush()
}

func imagesRmCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "rm ID|NAME|TENANT/NAME", Short: "delete an image (its file goes when no image names it)",
		Example: "  enjin images rm debian\n  enjin images rm acme/tools", Args: argsBetween(1, 1, "an image ID, NAME or TENANT/NAME")}
	c.RunE = func(c *cobra.Command, args []string) error {
		iq, err := parseImageRef("rm", args[0])
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		im, err := iq.find(c.Context(), cl)
		if err != nil {
			return err
		}
		if err := cl.do(c.Context(), "DELETE", "/v1/images/"+im.ID, nil, nil, nil); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.OutOrStdout(), "deleted image %s (%s)\n", imageRef(im), im.ID)
		return err
	}
	return c
}
