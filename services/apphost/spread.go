package apphost

import (
	"context"
	"enjin/services/appapi"
	"fmt"
	"io"

	"enjin"
)

// maxShareOf bounds how many hosts one app's instances are spread over.
const maxShareOf = 64

// mine reports whether the instance with index i is this host's under share s.
func mine(s Share, i int) bool { return s.Of <= 1 || i%s.Of == s.Slot }

// checkShare refuses a share that names no slot of its hosts.
func checkShare(s Share) error {
	if s.Of < 0 || s.Of > maxShareOf || s.Slot < 0 || s.Slot >= max(s.Of, 1) {
		return &FieldError{Field: "share", Msg: fmt.Sprintf("slot %d of %d: want 0 ≤ slot < of ≤ %d", s.Slot, s.Of, maxShareOf)}
	}
	return nil
}

// Spread makes this host run the app's instances that are its under share s: those now its
// start (and are waited for until healthy), then those no longer its drain and stop, type by
// type, as a scale does. With scale (a copy of an app whose home is another host: that
// host's scale overrides), the app's scale becomes scale first.
func (h *Host) Spread(ctx context.Context, tenant enjin.TenantID, name string, scale map[string]int, s Share) error {
	if err := checkShare(s); err != nil {
		return err
	}
	a, r, err := h.liveLocked(tenant, name)
	if err != nil {
		return err
	}
	defer a.deploy.Unlock()
	if scale != nil {
		scale = onlyTypes(scale, r.Manifest)
		if err := checkInstances(scale, r.Manifest.Procfile, "scale", h.cfg.Policy); err != nil {
			return err
		}
	}
	a.mu.Lock()
	if scale != nil {
		a.scale = scale
	}
	a.share = s
	counts, err := Manifest(r.Manifest).counts(a.scale, h.cfg.Policy)
	if err == nil {
		err = a.save()
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	for _, t := range keysOf(counts) {
		if err := a.fit(ctx, r, t, counts[t]); err != nil {
			return err
		}
	}
	return nil
}

// onlyTypes is scale without the types release manifest m does not run.
func onlyTypes(scale map[string]int, m appapi.Manifest) map[string]int {
	out := map[string]int{}
	for t, n := range scale {
		if _, ok := m.Procfile[t]; ok {
			out[t] = n
		}
	}
	return out
}

// Follow makes a copy of an app — one this host runs a share of, from the recipe of the host
// the app lives on — run rec's release (the package pkg) with rec's environment and scale,
// as its next release, the way a deploy does: the app changed at home.
func (h *Host) Follow(ctx context.Context, tenant enjin.TenantID, name string, rec Recipe, pkg io.Reader, progress Progress) (Release, error) {
	if err := CheckEnv(rec.Env); err != nil {
		return Release{}, err
	}
	a, err := h.existing(tenant, name)
	if err != nil {
		return Release{}, err
	}
	a.deploy.Lock()
	defer a.deploy.Unlock()
	h.pkgs.RLock()
	digest, size, err := h.storePackage(pkg)
	if err != nil {
		h.pkgs.RUnlock()
		return Release{}, err
	}
	a.mu.Lock()
	env, scale, from := a.env, a.scale, a.from
	a.env, a.from = copyMap(rec.Env), rec.Release
	a.mu.Unlock()
	r, files, err := a.newRelease(digest)
	h.pkgs.RUnlock()
	if err == nil {
		want := onlyTypes(rec.Scale, r.Manifest)
		if err = checkInstances(want, r.Manifest.Procfile, "scale", h.cfg.Policy); err == nil {
			a.mu.Lock()
			a.scale = want
			a.mu.Unlock()
			r, err = a.goLive(ctx, r, files, size, progress)
		}
	}
	if err != nil { // the release that runs keeps what it ran with
		a.mu.Lock()
		a.env, a.scale, a.from = env, scale, from
		a.save()
		a.mu.Unlock()
	}
	return r, err
}
