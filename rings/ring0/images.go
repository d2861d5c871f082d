package ring0

import (
	"context"
	"path/filepath"

	"enjin/services/images"
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
