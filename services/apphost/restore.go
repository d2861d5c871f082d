package apphost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"enjin"
)

// Restore brings back, after a restart of the node, every app that had a live release. It
// first clears what an earlier run left behind when it died without stopping its instances:
// every process in the node's cgroups is killed (by cgroup, never by pid alone) and the
// cgroups, network namespaces and veths are removed. Then each live release's instances start
// again; a release stays live (never marked failed) while its instances come up, and its
// route returns as they become healthy.
func (h *Host) Restore(ctx context.Context) error {
	left, err := h.sweep()
	if err != nil {
		h.log.Error("leftovers of an earlier run not all removed", "err", err)
	} else if left > 0 {
		h.log.Info("removed leftovers of an earlier run", "n", left)
	}
	tenants, err := os.ReadDir(filepath.Join(h.cfg.Dir, "apps"))
	if err != nil {
		return fmt.Errorf("apphost: restore: %w", err)
	}
	for _, t := range tenants {
		apps, _ := os.ReadDir(filepath.Join(h.cfg.Dir, "apps", t.Name()))
		for _, ad := range apps {
			if ad.IsDir() {
				h.restore(ctx, enjin.TenantID(t.Name()), ad.Name())
			}
		}
	}
	return nil
}

// restore starts one app's live release again, without waiting for it.
func (h *Host) restore(ctx context.Context, t enjin.TenantID, name string) {
	defer h.recovered("restore "+string(t)+"/"+name, nil, nil)
	a, err := h.appFor(t, name)
	if err != nil {
		h.log.Warn("app not restored", "tenant", t, "app", name, "err", err)
		return
	}
	a.deploy.Lock()
	defer a.deploy.Unlock()
	a.mu.Lock()
	r, ok := a.release(a.current)
	a.mu.Unlock()
	if !ok {
		return
	}
	if _, err := a.startRelease(ctx, r, nil); err != nil {
		h.log.Error("app not restored", "tenant", t, "app", name, "release", r.Number, "err", err)
		return
	}
	h.routesChanged(a)
}

// sweep kills and removes what instances of an earlier run of this node left: everything in
// its cgroups, and its namespaces and devices. Nothing of this run exists yet.
func (h *Host) sweep() (int, error) {
	n := 0
	groups, err := h.cfg.Cgroups.List()
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, g := range groups {
		if err := h.removeGroup(g); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	m, err := h.cfg.Network.Sweep()
	if h.cfg.Networks != nil {
		h.cfg.Networks.Sweep(h.instanceIDs()) // ring 0's ports of the instances gone
	}
	return n + m, errors.Join(append(errs, err)...)
}

// removeGroup kills what runs in cgroup g and removes it. A process may enter it between
// the two (one forking as it dies, or restarted by an earlier node not quite gone): then
// again, a few times.
func (h *Host) removeGroup(g string) error {
	var err error
	for try := range 10 {
		if try > 0 {
			time.Sleep(time.Duration(try) * 10 * time.Millisecond)
		}
		if err = h.cfg.Cgroups.Kill(g); err != nil {
			continue
		}
		if err = h.cfg.Cgroups.Remove(g); err == nil {
			return nil
		}
	}
	return err
}

// Apps lists tenant's apps; reveal says whether env values are shown or masked.
func (h *Host) Apps(tenant enjin.TenantID, reveal bool) []AppInfo {
	h.mu.Lock()
	var apps []*app
	for _, a := range h.apps {
		if a.tenant == string(tenant) {
			apps = append(apps, a)
		}
	}
	h.mu.Unlock()
	out := []AppInfo{}
	for _, a := range apps {
		a.mu.Lock()
		counts := map[string]int{}
		for _, in := range a.instances {
			if in.release == a.current {
				counts[in.typ]++
			}
		}
		out = append(out, AppInfo{Tenant: a.tenant, Name: a.name, Release: a.current, Instances: counts, Env: mask(a.env, reveal),
			Share: a.share})
		a.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Masked stands for an env value the caller may not see.
const Masked = "********"

// mask copies env, with every value masked unless reveal.
func mask(env map[string]string, reveal bool) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		if !reveal {
			v = Masked
		}
		out[k] = v
	}
	return out
}

// Env is the app's environment as set through the env API (the manifest's own is in its
// releases), values masked unless reveal.
func (h *Host) Env(tenant enjin.TenantID, name string, reveal bool) (map[string]string, error) {
	a, err := h.existing(tenant, name)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return mask(a.env, reveal), nil
}

// SetEnv changes the app's environment — set adds or replaces, unset removes; with replace,
// set is the whole new environment — and, like a deploy, makes a new release of the live
// bundle that runs with it. Nothing changes if that release does not go live.
func (h *Host) SetEnv(ctx context.Context, tenant enjin.TenantID, name string, set map[string]string, unset []string, replace bool, progress Progress) (Release, error) {
	a, err := h.existing(tenant, name)
	if err != nil {
		return Release{}, err
	}
	a.deploy.Lock()
	defer a.deploy.Unlock()
	a.mu.Lock()
	r, ok := a.release(a.current)
	old := copyMap(a.env)
	a.mu.Unlock()
	if !ok {
		return Release{}, errNotLive(a)
	}
	env := old
	if replace {
		env = map[string]string{}
	}
	for _, k := range unset {
		if _, both := set[k]; both {
			return Release{}, &FieldError{Field: "env." + fieldKey(k), Msg: "both set and unset"}
		}
		if err := ValidEnvName(k); err != nil {
			return Release{}, err
		}
		delete(env, k)
	}
	for k, v := range set {
		env[k] = v
	}
	if err := CheckEnv(env); err != nil {
		return Release{}, err
	}
	a.mu.Lock()
	a.env = env
	a.mu.Unlock()
	rel, err := a.redeploy(ctx, r.Digest, progress)
	if err != nil {
		a.mu.Lock()
		a.env = old
		_ = a.save()
		a.mu.Unlock()
	}
	return rel, err
}

// Figure is what the host measures of one instance, for its metrics.
type Figure struct {
	Tenant     enjin.TenantID
	App, Name  string // Name: type.index, e.g. web.0
	State      string
	Restarts   int
	CPUSeconds float64 // used since it started (its cgroup's)
	MemBytes   uint64
}

// Figures measures every instance the host runs now, leaving the heartbeat's CPU shares be.
func (h *Host) Figures() []Figure {
	var out []Figure
	for _, a := range h.allApps() {
		for _, in := range a.all() {
			info := in.info()
			f := Figure{Tenant: enjin.TenantID(a.tenant), App: a.name, Name: info.Name, State: info.State, Restarts: info.Restarts}
			if mem, cpu, err := h.cfg.Cgroups.Usage(in.cgroup); err == nil {
				f.MemBytes, f.CPUSeconds = mem, float64(cpu)/1e9
			}
			out = append(out, f)
		}
	}
	return out
}

// Children reports every instance as a ring 2 child of this node, with its cgroup's memory
// and the CPU it used since the previous report, for the node's signed heartbeat.
func (h *Host) Children() []enjin.Child {
	apps := h.allApps()
	var out []enjin.Child
	for _, a := range apps {
		for _, in := range a.all() {
			info := in.info()
			c := enjin.Child{Node: enjin.NodeID(in.id), Tenant: enjin.TenantID(a.tenant), App: a.name, State: info.State, Restarts: info.Restarts}
			if mem, cpu, err := h.cfg.Cgroups.Usage(in.cgroup); err == nil {
				c.MemBytes, c.CPU = mem, in.cpuShare(cpu)
			}
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}
