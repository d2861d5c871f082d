package apphost

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"enjin"
)

// Scale sets how many instances of process type t run, as a change to the live release
// (zero-downtime like a deploy).
func (h *Host) Scale(ctx context.Context, tenant enjin.TenantID, name, t string, n int) error {
	a, r, err := h.liveLocked(tenant, name)
	if err != nil {
		return err
	}
	defer a.deploy.Unlock()
	if _, typ := r.Manifest.Procfile[t]; !typ {
		return &FieldError{Field: "scale." + fieldKey(t), Msg: fmt.Sprintf("release %d has no process type %s", r.Number, quote(t))}
	}
	want := a.scaleSnapshot()
	want[t] = n
	if err := checkInstances(want, r.Manifest.Procfile, "scale", h.cfg.Policy); err != nil {
		return err
	}
	return a.scaleTo(ctx, r, t, n)
}

// liveLocked is tenant's app, held for a change (its deploy lock, which the caller releases
// unless there is an error), and its live release.
func (h *Host) liveLocked(tenant enjin.TenantID, name string) (*app, Release, error) {
	a, err := h.existing(tenant, name)
	if err != nil {
		return nil, Release{}, err
	}
	a.deploy.Lock()
	a.mu.Lock()
	r, ok := a.release(a.current)
	a.mu.Unlock()
	if !ok {
		a.deploy.Unlock()
		return nil, Release{}, errNotLive(a)
	}
	return a, r, nil
}

func (a *app) scaleSnapshot() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return copyMap(a.scale)
}

// scaleTo makes n instances of type t of the live release r run (see fit); the new count
// is kept only once it runs.
func (a *app) scaleTo(ctx context.Context, r Release, t string, n int) error {
	a.mu.Lock()
	old, had := a.scale[t]
	a.scale[t] = n
	a.mu.Unlock()
	if err := a.fit(ctx, r, t, n); err != nil {
		a.mu.Lock()
		if had {
			a.scale[t] = old
		} else {
			delete(a.scale, t)
		}
		a.mu.Unlock()
		return err
	}
	a.mu.Lock()
	err := a.save()
	a.mu.Unlock()
	return err
}

// fit starts the missing instances of type t of the live release r that are this host's —
// of n, under the app's share — and waits for them to be healthy, then drains and stops the
// others.
func (a *app) fit(ctx context.Context, r Release, t string, n int) error {
	a.mu.Lock()
	share := a.share
	have := map[int]*instance{}
	for _, in := range a.instances {
		if in.release == r.Number && in.typ == t {
			have[in.index] = in
		}
	}
	a.mu.Unlock()
	missing := map[string]bool{}
	for i := range n {
		if have[i] == nil && mine(share, i) {
			missing[fmt.Sprintf("%s.%d", t, i)] = true
		}
	}
	var added []*instance
	if len(missing) > 0 {
		var err error
		if added, err = a.startRelease(ctx, r, missing); err != nil {
			return err
		}
	}
	if reason, ok := a.waitHealthy(ctx, added); !ok {
		a.stopAll(added)
		return &DeployError{Release: r.Number, Reason: reason, Err: ErrUnhealthy}
	}
	var extra []*instance
	for i, in := range have {
		if i >= n || !mine(share, i) {
			extra = append(extra, in)
			in.mu.Lock()
			in.state = Stopped // out of the router before draining
			in.mu.Unlock()
		}
	}
	a.host.routesChanged(a)
	a.drain(extra)
	a.stopAll(extra)
	return nil
}

// Rollback makes release n live again, the same way as a deploy.
func (h *Host) Rollback(ctx context.Context, tenant enjin.TenantID, name string, n int) (Release, error) {
	a, err := h.existing(tenant, name)
	if err != nil {
		return Release{}, err
	}
	a.deploy.Lock()
	defer a.deploy.Unlock()
	a.mu.Lock()
	r, ok := a.release(n)
	live := a.current == n
	a.mu.Unlock()
	if !ok || r.Status == "failed" {
		return Release{}, fmt.Errorf("apphost: %s/%s release %d: %w", tenant, name, n, ErrNotFound)
	}
	if live {
		return r, nil
	}
	return a.switchTo(ctx, r, nil)
}

// Destroy stops every instance of the app, takes it out of the router and deletes its
// releases, HOME and state; its uid is free again.
func (h *Host) Destroy(tenant enjin.TenantID, name string) error {
	_, err := h.destroy(tenant, name, false)
	return err
}

// Retire is Destroy for a copy of an app that runs elsewhere now (ring 0 re-placed it while
// this host was out of reach): its HOME, which may hold what the app wrote while it was cut
// off, is not deleted but kept aside, root's alone, for an operator to recover. It returns
// where the HOME image went ("" if the app had none).
func (h *Host) Retire(tenant enjin.TenantID, name string) (string, error) {
	return h.destroy(tenant, name, true)
}

func (h *Host) destroy(tenant enjin.TenantID, name string, keepHome bool) (string, error) {
	a, err := h.existing(tenant, name)
	if err != nil {
		return "", err
	}
	a.deploy.Lock()
	defer a.deploy.Unlock()
	a.mu.Lock()
	a.current = 0 // no live release: stopping instances must not route the app again
	a.mu.Unlock()
	h.cfg.Router.RemoveRoute(a.tenant, a.name)
	a.stopAll(a.all())
	a.stopJobs()
	h.mu.Lock()
	delete(h.apps, key(tenant, name))
	h.mu.Unlock()
	h.logs.forget(a.tenant, a.name)
	if err := a.unmountHome(); err != nil {
		return "", err
	}
	var kept string
	if _, err := os.Stat(a.homeImage()); keepHome && err == nil {
		dir := filepath.Join(h.cfg.Dir, "retired", a.tenant)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("apphost: %w", err)
		}
		kept = filepath.Join(dir, fmt.Sprintf("%s-%d.img", a.name, time.Now().UnixNano()))
		if err := os.Rename(a.homeImage(), kept); err != nil {
			return "", fmt.Errorf("apphost: keep the home of %s/%s: %w", tenant, name, err)
		}
		h.log.Warn("a retired app's home kept", "tenant", a.tenant, "app", a.name, "image", kept)
		pruneRetired(dir, a.name)
	}
	if err := os.RemoveAll(a.dir()); err != nil {
		return kept, fmt.Errorf("apphost: %w", err)
	}
	h.uids.release(a.uid, a.dir())
	h.prunePackages()
	return kept, nil
}

// keepRetired is how many HOME images of one app's retired copies a host keeps: a host that
// keeps being cut off and coming back would otherwise fill its disk with them.
const keepRetired = 3

// pruneRetired deletes, of app's HOME images kept aside in dir (its tenant's), all but the
// newest keepRetired. Names are APP-NANOS.img, the tenant's alone in its directory, so no
// other app's or tenant's is ever taken for one.
func pruneRetired(dir, app string) {
	entries, _ := os.ReadDir(dir)
	var mine []int64
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), app+"-")
		stamp, img := strings.CutSuffix(rest, ".img")
		n, err := strconv.ParseInt(stamp, 10, 64)
		if ok && img && err == nil && n >= 0 && strconv.FormatInt(n, 10) == stamp {
			mine = append(mine, n)
		}
	}
	slices.Sort(mine)
	for _, n := range mine[:max(0, len(mine)-keepRetired)] {
		os.Remove(filepath.Join(dir, fmt.Sprintf("%s-%d.img", app, n)))
	}
}
