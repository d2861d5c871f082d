package apphost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"time"

	"enjin"
	"enjin/services/appapi"
)

// Deploy streams body (a bundle: gzipped tar with a Procfile) into the package store,
// unpacks and checks it as the app's next release, and moves traffic to it once all of its
// web instances are healthy; then the previous release is drained and stopped. Progress
// hears each step; its first event ("unpacked") means the bundle was accepted. An error
// before it is the bundle's or the request's fault (a *FieldError, ErrTooLarge, a bad name);
// after it, a *DeployError says why the release did not go live.
func (h *Host) Deploy(ctx context.Context, tenant enjin.TenantID, name string, body io.Reader, progress Progress) (Release, error) {
	a, err := h.appFor(tenant, name)
	if err != nil {
		return Release{}, err
	}
	a.deploy.Lock()
	defer a.deploy.Unlock()
	h.pkgs.RLock()
	digest, size, err := h.storePackage(body)
	if err != nil {
		h.pkgs.RUnlock()
		h.forgetIfEmpty(a)
		return Release{}, err
	}
	r, files, err := a.newRelease(digest)
	h.pkgs.RUnlock()
	if err != nil {
		h.forgetIfEmpty(a)
		return Release{}, err
	}
	return a.goLive(ctx, r, files, size, progress)
}

// goLive says a new release is unpacked, moves traffic to it (see switchTo) and prunes old
// releases. The caller holds a.deploy.
func (a *app) goLive(ctx context.Context, r Release, files int, size int64, progress Progress) (Release, error) {
	progress.send(Event{Event: "unpacked", Release: r.Number, Files: files, Bytes: size})
	r, err := a.switchTo(ctx, r, progress)
	a.prune()
	return r, err
}

// DeployPackage deploys again, as the app's next release, a package one of its releases was
// made of — a directory deployed again unchanged — without its bytes being sent: digest is
// TreeDigest's. Only the app's own releases count, so whether another app or tenant has a
// package is never told; a package the app has not got (or an app that does not exist) is
// ErrNotFound, and the client uploads.
func (h *Host) DeployPackage(ctx context.Context, tenant enjin.TenantID, name, digest string, progress Progress) (Release, error) {
	if !validDigest(digest) {
		return Release{}, &FieldError{Field: "package", Msg: fmt.Sprintf("%.80q: want sha256- and 64 lower-case hex digits", digest)}
	}
	a, err := h.existing(tenant, name)
	if err != nil {
		return Release{}, err
	}
	a.deploy.Lock()
	defer a.deploy.Unlock()
	a.mu.Lock()
	had := slices.ContainsFunc(a.releases, func(r Release) bool { return r.Digest == digest })
	a.mu.Unlock()
	_, inDir := a.releaseDirOf(digest)
	if _, err := os.Stat(h.packagePath(digest)); !had || err != nil && !inDir {
		return Release{}, fmt.Errorf("apphost: %s/%s has no release of package %s: %w", tenant, name, digest, ErrNotFound)
	}
	return a.redeploy(ctx, digest, progress)
}

// releaseDirOf is the number of the app's newest release of package digest whose directory
// is still here; ok is false if there is none.
func (a *app) releaseDirOf(digest string) (n int, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.releases) - 1; i >= 0; i-- {
		if r := a.releases[i]; r.Digest == digest {
			if _, err := os.Stat(a.releaseDir(r.Number)); err == nil {
				return r.Number, true
			}
		}
	}
	return 0, false
}

// reuse fills stage with the files of the app's newest release of package digest whose
// directory is still here, linked rather than copied: a release's files are root's and never
// change, so two releases of one package can share them. It fails if there is none.
func (a *app) reuse(digest, stage string) (int, []Entry, error) {
	from, ok := a.releaseDirOf(digest)
	if !ok {
		return 0, nil, ErrNotFound
	}
	var entries []Entry
	if b, err := os.ReadFile(a.filesPath(from)); err == nil {
		json.Unmarshal(b, &entries) // none: a release from before digests were kept
	}
	files, err := linkTree(a.releaseDir(from), stage)
	return files, entries, err
}

// redeploy makes a new release of a package the host has (an env change), like Deploy.
func (a *app) redeploy(ctx context.Context, digest string, progress Progress) (Release, error) {
	a.host.pkgs.RLock()
	r, files, err := a.newRelease(digest)
	a.host.pkgs.RUnlock()
	if err != nil {
		return Release{}, err
	}
	return a.goLive(ctx, r, files, 0, progress)
}

// newRelease makes the app's next release of package digest: its files linked from a
// release of it here, or unpacked from the package.
func (a *app) newRelease(digest string) (Release, int, error) {
	return a.newReleaseFrom(func(stage string) (int, string, []Entry, error) {
		switch files, entries, err := a.reuse(digest, stage); {
		case err == nil:
			return files, digest, entries, nil
		case !errors.Is(err, ErrNotFound):
			return 0, "", nil, err
		}
		f, err := os.Open(a.host.packagePath(digest))
		if err != nil {
			return 0, "", nil, err
		}
		defer f.Close()
		files, _, entries, err := unpackStream(f, stage, nil)
		return files, digest, entries, err
	})
}

// newReleaseFrom has fill put a release's files in a staging directory only root can enter,
// checks its manifest, gives its files their final owner and modes, moves it into place as
// the app's next release and records it, with its files' digests. The caller holds a.deploy.
func (a *app) newReleaseFrom(fill func(stage string) (files int, digest string, entries []Entry, err error)) (Release, int, error) {
	h := a.host
	stage, err := h.stagingDir()
	if err != nil {
		return Release{}, 0, err
	}
	defer os.RemoveAll(stage)
	files, digest, entries, err := fill(stage)
	if err != nil {
		return Release{}, 0, &FieldError{Field: "bundle", Msg: err.Error()}
	}
	m, err := readManifest(stage, h.cfg.Policy)
	if err != nil {
		return Release{}, 0, err
	}
	if err := restrict(stage, a.uid); err != nil {
		return Release{}, 0, err
	}
	a.mu.Lock()
	n := 1
	if len(a.releases) > 0 {
		n = a.releases[len(a.releases)-1].Number + 1
	}
	a.mu.Unlock()
	dir := a.releaseDir(n)
	os.RemoveAll(dir) // a half-made release of a crashed deploy
	if err := os.Rename(stage, dir); err != nil {
		return Release{}, 0, fmt.Errorf("apphost: %w", err)
	}
	if err := a.saveFiles(n, entries); err != nil {
		return Release{}, 0, fmt.Errorf("apphost: %w", err)
	}
	r := Release{Number: n, Digest: digest, Manifest: appapi.Manifest(m), Created: time.Now(), Status: "starting"}
	a.mu.Lock()
	a.releases = append(a.releases, r)
	err = a.save()
	a.mu.Unlock()
	return r, files, err
}

// forgetIfEmpty drops an app that has never had a release (its first deploy was refused),
// so a refused name leaves no directory and holds no uid.
func (h *Host) forgetIfEmpty(a *app) {
	a.mu.Lock()
	empty := len(a.releases) == 0 && len(a.instances) == 0
	a.mu.Unlock()
	if !empty {
		return
	}
	h.mu.Lock()
	delete(h.apps, key(enjin.TenantID(a.tenant), a.name))
	h.mu.Unlock()
	os.RemoveAll(a.dir())
	h.uids.release(a.uid, a.dir())
}

// checkQuota refuses to run more than the policy's instances per tenant: the tenant's other
// apps' instances plus n for this app.
func (h *Host) checkQuota(a *app, n int) error {
	h.mu.Lock()
	others := make([]*app, 0, len(h.apps))
	for _, o := range h.apps {
		if o.tenant == a.tenant && o != a {
			others = append(others, o)
		}
	}
	h.mu.Unlock()
	total := n
	for _, o := range others {
		o.mu.Lock()
		total += len(o.instances)
		o.mu.Unlock()
	}
	if max := h.cfg.Policy.MaxTenantInstances; total > max {
		return fmt.Errorf("apphost: tenant %s would run %d instances, %d at most: %w", a.tenant, total, max, ErrQuota)
	}
	return nil
}

func copyMap[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (h *Host) existing(tenant enjin.TenantID, name string) (*app, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.apps[key(tenant, name)]
	if !ok {
		return nil, fmt.Errorf("apphost: app %s/%s: %w", tenant, name, ErrNotFound)
	}
	return a, nil
}

// Ps lists the app's instances.
func (h *Host) Ps(tenant enjin.TenantID, name string) ([]InstanceInfo, error) {
	a, err := h.existing(tenant, name)
	if err != nil {
		return nil, err
	}
	var out []InstanceInfo
	for _, in := range a.all() {
		info := in.info()
		if mem, cpu, err := h.cfg.Cgroups.Usage(in.cgroup); err == nil {
			info.MemBytes, info.CPU = mem, in.cpuSince(cpu)
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Release != out[j].Release {
			return out[i].Release < out[j].Release
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Releases lists the app's releases, oldest first.
func (h *Host) Releases(tenant enjin.TenantID, name string) ([]Release, error) {
	a, err := h.existing(tenant, name)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Release(nil), a.releases...), nil
}

// errNotLive is a request that needs a live release the app does not have.
func errNotLive(a *app) error {
	return fmt.Errorf("apphost: %s/%s has no live release: %w", a.tenant, a.name, ErrNotFound)
}
