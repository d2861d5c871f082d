package apphost

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"enjin/rings"
)

// Restore brings back, after a restart of the node, every app that had a live release: its
// instances start again and its route returns once they are healthy.
func (h *Host) Restore(ctx context.Context) error {
	tenants, err := os.ReadDir(filepath.Join(h.cfg.Dir, "apps"))
	if err != nil {
		return fmt.Errorf("apphost: restore: %w", err)
	}
	for _, t := range tenants {
		apps, _ := os.ReadDir(filepath.Join(h.cfg.Dir, "apps", t.Name()))
		for _, ad := range apps {
			if !ad.IsDir() {
				continue
			}
			a, err := h.appFor(rings.TenantID(t.Name()), ad.Name())
			if err != nil {
				h.log.Warn("app not restored", "tenant", t.Name(), "app", ad.Name(), "err", err)
				continue
			}
			a.mu.Lock()
			r, ok := a.release(a.current)
			a.mu.Unlock()
			if !ok {
				continue
			}
			a.deploy.Lock()
			_, err = a.switchTo(ctx, r)
			a.deploy.Unlock()
			if err != nil {
				h.log.Error("app not restored", "tenant", t.Name(), "app", ad.Name(), "err", err)
			}
		}
	}
	return nil
}

// AppInfo summarizes an app.
type AppInfo struct {
	Tenant    string            `json:"tenant"`
	Name      string            `json:"name"`
	Release   int               `json:"release"` // live release, 0 if none
	Instances map[string]int    `json:"instances"`
	Env       map[string]string `json:"env"`
}

// Apps lists tenant's apps.
func (h *Host) Apps(tenant rings.TenantID) []AppInfo {
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
		r, _ := a.release(a.current)
		env := map[string]string{}
		for k, v := range a.env {
			env[k] = v
		}
		out = append(out, AppInfo{Tenant: a.tenant, Name: a.name, Release: a.current, Instances: a.counts(r), Env: env})
		a.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// SetEnv replaces the app's environment and, like a deploy, makes a new release of the live
// bundle that runs with it.
func (h *Host) SetEnv(ctx context.Context, tenant rings.TenantID, name string, env map[string]string) (Release, error) {
	a, err := h.existing(tenant, name)
	if err != nil {
		return Release{}, err
	}
	for k := range env {
		if k == "" || k == "PORT" || len(k) > 128 {
			return Release{}, fmt.Errorf("apphost: env %q: a name other than PORT, at most 128 bytes", k)
		}
	}
	a.mu.Lock()
	r, ok := a.release(a.current)
	a.env = env
	_ = a.save()
	a.mu.Unlock()
	if !ok {
		return Release{}, fmt.Errorf("apphost: %s/%s has no live release: %w", tenant, name, ErrNotFound)
	}
	b, err := os.ReadFile(h.packagePath(r.Digest))
	if err != nil {
		return Release{}, fmt.Errorf("apphost: package of release %d: %w", r.Number, err)
	}
	return h.Deploy(ctx, tenant, name, b)
}

// Children reports every instance as a ring 2 child of this node, with its cgroup's memory
// and the CPU it used since the previous report, for the node's signed heartbeat.
func (h *Host) Children() []rings.Child {
	h.mu.Lock()
	apps := make([]*app, 0, len(h.apps))
	for _, a := range h.apps {
		apps = append(apps, a)
	}
	h.mu.Unlock()
	var out []rings.Child
	for _, a := range apps {
		for _, in := range a.all() {
			info := in.info()
			c := rings.Child{Node: rings.NodeID(in.id), Tenant: rings.TenantID(a.tenant), App: a.name, State: info.State, Restarts: info.Restarts}
			if mem, cpu, err := h.cfg.Cgroups.Usage(in.cgroup); err == nil {
				c.MemBytes, c.CPU = mem, in.cpuShare(cpu)
			}
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}
