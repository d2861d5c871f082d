package ring0

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"enjin/services/images"
	"enjin/services/inventory"
)

// openImages opens the VM image store in <state>/images. Ring 0 runs without one if it
// cannot (no qemu-img, say): the image routes then answer 503, and the log says why.
func (r *Ring0) openImages() {
	s, err := images.New(images.Config{Dir: filepath.Join(r.cfg.StateDir, "images"), Logger: r.log})
	if err != nil {
		r.log.Warn("no image store: the image routes answer 503", "err", err)
		return
	}
	r.images = s
}

// sweepImages removes the stored image files no record names any more: those of a deleted
// tenant, whose records went with it, or of a delete whose file removal failed.
func (r *Ring0) sweepImages(ctx context.Context) {
	if r.images == nil {
		return
	}
	removed, err := r.images.Sweep(func(d string) (bool, error) { return r.store.ImageDigestUsed(ctx, d) })
	if err != nil && ctx.Err() == nil {
		r.log.Error("image sweep", "err", err)
	}
	if len(removed) > 0 {
		r.log.Info("image files no record names removed", "digests", removed)
	}
}

// imageFile opens part p of image im, first fetching it from another member if this one does
// not hold it: the member that took an upload keeps the only copy until another needs it.
func (r *Ring0) imageFile(ctx context.Context, im inventory.Image, p images.Part) (*os.File, error) {
	f, err := r.images.Open(im.Digest, p)
	if err == nil || !errors.Is(err, images.ErrNotFound) {
		return f, err
	}
	want, size := im.Digest, im.Size
	switch p {
	case images.PartKernel, images.PartInitrd:
		part := im.Kernel
		if p == images.PartInitrd {
			part = im.Initrd
		}
		if part == nil {
			return nil, fmt.Errorf("ring0: image %s has no %s: %w", im.ID, p, images.ErrNotFound)
		}
		want, size = part.Digest, part.Size
	}
	if err := r.fetchImage(ctx, im, p, want, size); err != nil {
		return nil, err
	}
	return r.images.Open(im.Digest, p)
}

// fetchImage asks the other members' APIs, with this member's admin token (which every member
// takes), for part p of image im, and keeps the first copy whose bytes hash to want.
func (r *Ring0) fetchImage(ctx context.Context, im inventory.Image, p images.Part, want string, size int64) error {
	ms, err := r.Members(ctx)
	if err != nil {
		return err
	}
	tok, err := os.ReadFile(r.AdminTokenFile())
	if err != nil {
		return fmt.Errorf("ring0: admin token: %w", err)
	}
	var errs []error
	for _, m := range ms {
		if m.Member == r.member {
			continue
		}
		u := m.API + "/v1/images/" + url.PathEscape(im.ID) + "/content"
		if p != images.PartDisk {
			u += "?part=" + string(p)
		}
		err := func() error {
			req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
			resp, err := r.membersClient().Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", m.Member, resp.Status)
			}
			return r.images.Adopt(im.Digest, p, want, resp.Body, size)
		}()
		if err == nil {
			r.log.Info("image fetched from another member", "image", im.ID, "part", p, "from", m.Member)
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("ring0: no other member gave the %s of image %s (%v): %w", p, im.ID, errors.Join(errs...), images.ErrNotFound)
}

// replicateEvery is how often a member checks it holds every image's files; replicateWait
// bounds the copy of one file.
const (
	replicateEvery = 10 * time.Second
	replicateWait  = 30 * time.Minute
)

// replicateImages keeps a copy of every image's files on this member, fetched from the
// others, until ctx ends: whichever member a ring 1 node asks for a VM's image has it, and an
// upload outlives the member that took it. A lone ring 0 has no one to fetch from.
func (r *Ring0) replicateImages(ctx context.Context) {
	t := time.NewTicker(replicateEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ms, err := r.Members(ctx); err != nil || len(ms) < 2 || r.images == nil {
			continue
		}
		ims, err := r.store.ListImages(ctx, inventory.ImageFilter{})
		if err != nil {
			continue
		}
		for _, im := range ims {
			for _, p := range images.Parts(images.Kind(im.Kind)) {
				fctx, cancel := context.WithTimeout(ctx, replicateWait) // a peer that stalls is left for the next round
				f, err := r.imageFile(fctx, im, p)
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						r.log.Warn("image not replicated here", "image", im.ID, "part", p, "err", err)
					}
					continue
				}
				f.Close()
			}
		}
	}
}
