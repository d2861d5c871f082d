package apphost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"enjin/rings"
	"enjin/supervisors/process"
)

// ErrUnhealthy is returned by Deploy when the new release did not become healthy in time;
// it was stopped and the previous release kept serving.
var ErrUnhealthy = errors.New("release not healthy in time; rolled back")

// ErrNotFound is returned for an app or release that does not exist.
var ErrNotFound = errors.New("not found")

// Deploy stores bundle, makes it the app's next release and moves traffic to it once all of
// its web instances are healthy; then the previous release is drained and stopped.
func (h *Host) Deploy(ctx context.Context, tenant rings.TenantID, name string, bundle []byte) (Release, error) {
	if len(bundle) > MaxBundle {
		return Release{}, fmt.Errorf("apphost: bundle of %d bytes is over %d", len(bundle), MaxBundle)
	}
	a, err := h.appFor(tenant, name)
	if err != nil {
		return Release{}, err
	}
	a.deploy.Lock()
	defer a.deploy.Unlock()
	digest := Digest(bundle)
	if _, err := os.Stat(h.packagePath(digest)); err != nil {
		if err := os.WriteFile(h.packagePath(digest), bundle, 0o600); err != nil {
			return Release{}, fmt.Errorf("apphost: store package: %w", err)
		}
	}
	a.mu.Lock()
	n := 1
	if len(a.releases) > 0 {
		n = a.releases[len(a.releases)-1].Number + 1
	}
	a.mu.Unlock()
	dir := a.releaseDir(n)
	os.RemoveAll(dir) // a half-made release of a crashed deploy
	if err := unpack(bundle, dir); err != nil {
		return Release{}, fmt.Errorf("apphost: %w", err)
	}
	if err := restrict(dir, a.uid); err != nil {
		return Release{}, err
	}
	m, err := readManifest(dir, DefaultPolicy())
	if err != nil {
		os.RemoveAll(dir)
		return Release{}, fmt.Errorf("apphost: %w", err)
	}
	r := Release{Number: n, Digest: digest, Manifest: m, Created: time.Now(), Status: "starting"}
	a.mu.Lock()
	a.releases = append(a.releases, r)
	err = a.save()
	a.mu.Unlock()
	if err != nil {
		return r, err
	}
	h.log.Debug("release unpacked", "tenant", tenant, "app", name, "release", n)
	return a.switchTo(ctx, r)
}

// switchTo starts release r's instances, waits for them to be healthy, moves traffic, and
// drains and stops the instances of other releases. If r never gets healthy, its instances
// are stopped and nothing else changes. The caller holds a.deploy.
func (a *app) switchTo(ctx context.Context, r Release) (Release, error) {
	h := a.host
	a.mu.Lock()
	counts := a.counts(r)
	a.mu.Unlock()
	var started []*instance
	for _, t := range sortedKeys(counts) {
		for i := range counts[t] {
			in, err := a.start(ctx, r, t, i)
			if err != nil {
				a.stopAll(started)
				a.setStatus(r.Number, "failed")
				return r, err
			}
			started = append(started, in)
		}
	}
	h.log.Debug("instances started", "release", r.Number, "since_release", time.Since(r.Created))
	if !a.waitHealthy(ctx, started) {
		a.stopAll(started)
		a.setStatus(r.Number, "failed")
		h.log.Warn("release not healthy; rolled back", "tenant", a.tenant, "app", a.name, "release", r.Number)
		return r, fmt.Errorf("apphost: %s/%s release %d: %w", a.tenant, a.name, r.Number, ErrUnhealthy)
	}
	a.mu.Lock()
	prev := a.current
	a.current = r.Number
	var old []*instance
	for _, in := range a.instances {
		if in.release != r.Number {
			old = append(old, in)
		}
	}
	a.mu.Unlock()
	h.log.Debug("release healthy", "release", r.Number, "since_release", time.Since(r.Created))
	h.routesChanged(a) // traffic moves: the router now picks only the new instances
	a.drain(old)
	a.stopAll(old)
	a.setStatus(r.Number, "live")
	if prev > 0 && prev != r.Number {
		a.setStatus(prev, "superseded")
	}
	h.log.Info("release live", "tenant", a.tenant, "app", a.name, "release", r.Number)
	r, _ = a.release(r.Number)
	return r, nil
}

// waitHealthy waits, up to the health timeout, until every one of ins is healthy.
func (a *app) waitHealthy(ctx context.Context, ins []*instance) bool {
	deadline := time.Now().Add(a.host.cfg.HealthTimeout)
	for !allHealthy(ins) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond) // health states change on their own goroutines
	}
	return true
}

func allHealthy(ins []*instance) bool {
	for _, in := range ins {
		if in.getState() != Healthy {
			return false
		}
	}
	return true
}

// drain waits until the router has no request in flight on any of ins, up to the grace.
func (a *app) drain(ins []*instance) {
	deadline := time.Now().Add(a.host.cfg.Grace)
	for time.Now().Before(deadline) {
		busy := false
		for _, in := range ins {
			if a.host.cfg.Router.Inflight(in.id) > 0 {
				busy = true
			}
		}
		if !busy {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (a *app) stopAll(ins []*instance) {
	for _, in := range ins {
		in.stop()
		a.mu.Lock()
		delete(a.instances, in.id)
		a.mu.Unlock()
	}
}

func (a *app) setStatus(n int, status string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.releases {
		if a.releases[i].Number == n {
			a.releases[i].Status = status
		}
	}
	_ = a.save()
}

// start runs instance i of type t of release r.
func (a *app) start(ctx context.Context, r Release, t string, i int) (*instance, error) {
	h := a.host
	id := fmt.Sprintf("%s-%s-r%d-%s-%d", a.tenant, a.name, r.Number, t, i)
	if len(id) > rings.MaxNameLen {
		id = fmt.Sprintf("i%x", hashString(id))
	}
	ep, err := h.cfg.Network.Attach(id)
	if err != nil {
		return nil, err
	}
	cg := "i-" + id
	procs, err := h.cfg.Cgroups.Create(cg, process.Limits{MemoryBytes: int64(r.Manifest.MemoryMB) << 20,
		CPUMillis: r.Manifest.CPUMillis, Pids: r.Manifest.Pids})
	if err != nil {
		ep.Close()
		return nil, err
	}
	a.mu.Lock()
	env := map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home/app", "PORT": strconv.Itoa(Port),
		"ENJIN_APP": a.name, "ENJIN_TENANT": a.tenant, "ENJIN_RELEASE": strconv.Itoa(r.Number),
		"ENJIN_INSTANCE": id, "ENJIN_PROCESS_TYPE": t}
	for k, v := range r.Manifest.Env {
		env[k] = v
	}
	for k, v := range a.env {
		env[k] = v
	}
	a.mu.Unlock()
	in := &instance{id: id, typ: t, index: i, command: r.Manifest.Procfile[t], release: r.Number, app: a, ep: ep, cgroup: cg,
		procs: procs, env: envList(env), state: Starting, done: make(chan struct{})}
	if t == "web" {
		in.health = r.Manifest.Health
	}
	ictx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	a.mu.Lock()
	a.instances[id] = in
	a.mu.Unlock()
	go in.run(ictx) // ends when stop cancels ictx
	return in, nil
}

func hashString(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (h *Host) existing(tenant rings.TenantID, name string) (*app, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.apps[key(tenant, name)]
	if !ok {
		return nil, fmt.Errorf("apphost: app %s/%s: %w", tenant, name, ErrNotFound)
	}
	return a, nil
}

// Ps lists the app's instances.
func (h *Host) Ps(tenant rings.TenantID, name string) ([]InstanceInfo, error) {
	a, err := h.existing(tenant, name)
	if err != nil {
		return nil, err
	}
	var out []InstanceInfo
	for _, in := range a.all() {
		out = append(out, in.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Releases lists the app's releases, oldest first.
func (h *Host) Releases(tenant rings.TenantID, name string) ([]Release, error) {
	a, err := h.existing(tenant, name)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Release(nil), a.releases...), nil
}

// Scale sets how many instances of process type t run, as a new deployment of the live
// release (zero-downtime like a deploy).
func (h *Host) Scale(ctx context.Context, tenant rings.TenantID, name, t string, n int) error {
	a, err := h.existing(tenant, name)
	if err != nil {
		return err
	}
	if n < 0 || n > 100 {
		return fmt.Errorf("apphost: scale %s to %d: want 0–100", t, n)
	}
	a.deploy.Lock()
	defer a.deploy.Unlock()
	a.mu.Lock()
	r, ok := a.release(a.current)
	if ok {
		if _, typ := r.Manifest.Procfile[t]; !typ {
			ok = false
		}
	}
	if ok {
		a.scale[t] = n
		_ = a.save()
	}
	a.mu.Unlock()
	if !ok {
		return fmt.Errorf("apphost: %s/%s has no live release with type %q: %w", tenant, name, t, ErrNotFound)
	}
	return a.scaleTo(ctx, r, t, n)
}

// scaleTo starts the missing instances of type t of the live release r (and waits for them
// to be healthy) or drains and stops the extra ones, highest index first.
func (a *app) scaleTo(ctx context.Context, r Release, t string, n int) error {
	a.mu.Lock()
	have := map[int]*instance{}
	for _, in := range a.instances {
		if in.release == r.Number && in.typ == t {
			have[in.index] = in
		}
	}
	a.mu.Unlock()
	var added, extra []*instance
	for i := range n {
		if have[i] == nil {
			in, err := a.start(ctx, r, t, i)
			if err != nil {
				a.stopAll(added)
				return err
			}
			added = append(added, in)
		}
	}
	for i, in := range have {
		if i >= n {
			extra = append(extra, in)
		}
	}
	if !a.waitHealthy(ctx, added) {
		a.stopAll(added)
		return fmt.Errorf("apphost: %s/%s: new instances of %s: %w", a.tenant, a.name, t, ErrUnhealthy)
	}
	for _, in := range extra {
		in.mu.Lock()
		in.state = Stopped // out of the router before draining
		in.mu.Unlock()
	}
	a.host.routesChanged(a)
	a.drain(extra)
	a.stopAll(extra)
	return nil
}

// Rollback makes release n live again, the same way as a deploy.
func (h *Host) Rollback(ctx context.Context, tenant rings.TenantID, name string, n int) (Release, error) {
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
	return a.switchTo(ctx, r)
}

// Destroy stops every instance of the app, takes it out of the router and deletes its
// releases and state.
func (h *Host) Destroy(tenant rings.TenantID, name string) error {
	a, err := h.existing(tenant, name)
	if err != nil {
		return err
	}
	a.deploy.Lock()
	defer a.deploy.Unlock()
	a.mu.Lock()
	a.current = 0 // no live release: stopping instances must not route the app again
	a.mu.Unlock()
	h.cfg.Router.RemoveRoute(a.tenant, a.name)
	a.stopAll(a.all())
	h.mu.Lock()
	delete(h.apps, key(tenant, name))
	h.mu.Unlock()
	return os.RemoveAll(a.dir())
}
