// Package apphost runs tenants' apps on a ring 1 node: it keeps bundles in a content-addressed
// package store, turns each deploy into an immutable numbered release, and runs every
// release's instances as ring 2 nodes, each confined by the process strategy's sandbox (its
// own uid/gid per tenant and app, network namespace on the ring's bridge, cgroup limits,
// no_new_privs, a working directory only it can write), under a watchdog that restarts it by
// policy and takes it out of the router while it fails its health check.
//
// Deploys are zero-downtime: the new release's instances must all be healthy before traffic
// moves to them; the old ones are drained (no request in flight) and then stopped. A release
// that is not healthy within the health timeout is stopped and the old one keeps serving.
//
// Ring 1 imports apphost; apphost imports the process supervisor and rings.
package apphost

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"enjin/rings"
	"enjin/supervisors/process"
)

// Route is an instance the router may send an app's requests to.
type Route struct{ ID, Addr string }

// Router is the part of the HTTP router apphost drives.
type Router interface {
	SetRoute(tenant, app string, backends []Route)
	RemoveRoute(tenant, app string)
	Inflight(id string) int64
}

// Config configures a host. Zero durations take the defaults noted.
type Config struct {
	Dir           string       // packages/ and apps/ live here
	Node          rings.NodeID // the ring 1 node running the apps
	Helper        string       // the sandbox helper binary (enjin)
	Network       *process.Network
	Cgroups       process.Cgroups
	Router        Router
	UIDBase       uint32        // first uid/gid for apps; 0 is 200000
	Grace         time.Duration // SIGTERM to SIGKILL; 0 is 30 s
	HealthTimeout time.Duration // a new release must be healthy within this; 0 is 60 s
	HealthEvery   time.Duration // 0 is 500 ms
	Logger        *slog.Logger
}

// Host runs apps. Its methods are safe for concurrent use; deploys of one app are serialized.
type Host struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	apps    map[string]*app // by tenant/name
	logs    *logBook
	stopped func(tenant, app, instance string) // set under logs.mu
}

// New returns a host; it starts nothing until apps are deployed.
func New(cfg Config) (*Host, error) {
	if cfg.Dir == "" || cfg.Helper == "" || cfg.Network == nil || cfg.Cgroups == nil || cfg.Router == nil {
		return nil, errors.New("apphost: Dir, Helper, Network, Cgroups and Router are required")
	}
	if cfg.UIDBase == 0 {
		cfg.UIDBase = 200000
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = 60 * time.Second
	}
	if cfg.HealthEvery <= 0 {
		cfg.HealthEvery = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{"packages", "apps"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o711); err != nil {
			return nil, fmt.Errorf("apphost: %w", err)
		}
	}
	// Every instance's sandbox mounts its root here, privately: the host never sees it.
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "sandbox"), 0o700); err != nil {
		return nil, fmt.Errorf("apphost: %w", err)
	}
	if err := os.Chmod(filepath.Join(cfg.Dir, "sandbox"), 0o700); err != nil {
		return nil, fmt.Errorf("apphost: %w", err)
	}
	return &Host{cfg: cfg, log: cfg.Logger.With("ring", 1), apps: map[string]*app{}, logs: newLogBook(filepath.Join(cfg.Dir, "apps"))}, nil
}

// Release is one immutable, numbered version of an app.
type Release struct {
	Number   int       `json:"number"`
	Digest   string    `json:"digest"`
	Manifest Manifest  `json:"manifest"`
	Created  time.Time `json:"created"`
	Status   string    `json:"status"` // live, superseded, failed
}

// app is one tenant's app and its running instances.
type app struct {
	host         *Host
	tenant, name string
	uid          uint32

	deploy sync.Mutex // one deploy, scale or rollback at a time

	mu        sync.Mutex
	releases  []Release
	current   int // live release, 0 before the first
	scale     map[string]int
	env       map[string]string
	instances map[string]*instance
}

func key(tenant rings.TenantID, name string) string { return string(tenant) + "/" + name }

func (a *app) dir() string                  { return filepath.Join(a.host.cfg.Dir, "apps", a.tenant, a.name) }
func (a *app) workDir() string              { return filepath.Join(a.dir(), "work") }
func (a *app) releaseDir(n int) string      { return filepath.Join(a.dir(), "releases", strconv.Itoa(n)) }
func (h *Host) packagePath(d string) string { return filepath.Join(h.cfg.Dir, "packages", d+".tar.gz") }
func (h *Host) sandboxRoot() string         { return filepath.Join(h.cfg.Dir, "sandbox") }

// appFor returns the app, creating its directories and uid the first time.
func (h *Host) appFor(tenant rings.TenantID, name string) (*app, error) {
	if err := tenant.Validate(); err != nil {
		return nil, fmt.Errorf("apphost: %w", err)
	}
	if !rings.IsSlug(name) {
		return nil, fmt.Errorf("apphost: app name %q: %w", name, rings.ErrBadName)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.apps[key(tenant, name)]; ok {
		return a, nil
	}
	f := fnv.New32a()
	f.Write([]byte(key(tenant, name)))
	a := &app{host: h, tenant: string(tenant), name: name, uid: h.cfg.UIDBase + f.Sum32()%1_000_000,
		scale: map[string]int{}, env: map[string]string{}, instances: map[string]*instance{}}
	if err := os.MkdirAll(a.workDir(), 0o700); err != nil {
		return nil, fmt.Errorf("apphost: %w", err)
	}
	for _, d := range []string{filepath.Dir(a.dir()), a.dir()} {
		os.Chmod(d, 0o711) // the app's uid passes through to its work and release dirs
	}
	if err := os.Chown(a.workDir(), int(a.uid), int(a.uid)); err != nil {
		return nil, fmt.Errorf("apphost: %w", err)
	}
	a.load()
	h.apps[key(tenant, name)] = a
	return a, nil
}

// state is what is kept of an app across restarts of the node.
type state struct {
	Releases []Release         `json:"releases"`
	Current  int               `json:"current"`
	Scale    map[string]int    `json:"scale"`
	Env      map[string]string `json:"env"`
}

func (a *app) load() {
	b, err := os.ReadFile(filepath.Join(a.dir(), "app.json"))
	if err != nil {
		return
	}
	var s state
	if json.Unmarshal(b, &s) == nil {
		a.releases, a.current = s.Releases, s.Current
		if s.Scale != nil {
			a.scale = s.Scale
		}
		if s.Env != nil {
			a.env = s.Env
		}
	}
}

// save writes the app's state; the caller holds a.mu.
func (a *app) save() error {
	b, _ := json.MarshalIndent(state{Releases: a.releases, Current: a.current, Scale: a.scale, Env: a.env}, "", "  ")
	tmp := filepath.Join(a.dir(), "app.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(a.dir(), "app.json"))
}

func (a *app) release(n int) (Release, bool) {
	for _, r := range a.releases {
		if r.Number == n {
			return r, true
		}
	}
	return Release{}, false
}

// counts is how many instances of each type release r runs, overrides applied.
func (a *app) counts(r Release) map[string]int {
	out := map[string]int{}
	for t := range r.Manifest.Procfile {
		out[t] = r.Manifest.Instances[t]
		if n, ok := a.scale[t]; ok {
			out[t] = n
		}
	}
	return out
}

// routesChanged recomputes what the router sends the app: the healthy web instances of the
// live release.
func (h *Host) routesChanged(a *app) {
	a.mu.Lock()
	var rs []Route
	for _, in := range a.instances {
		if in.typ == "web" && in.release == a.current && in.getState() == Healthy {
			rs = append(rs, Route{ID: in.id, Addr: fmt.Sprintf("%s:%d", in.ep.Addr, Port)})
		}
	}
	live := a.current > 0
	a.mu.Unlock()
	sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
	if live {
		h.cfg.Router.SetRoute(a.tenant, a.name, rs)
	}
}

// Close stops every instance of every app.
func (h *Host) Close() error {
	h.mu.Lock()
	apps := make([]*app, 0, len(h.apps))
	for _, a := range h.apps {
		apps = append(apps, a)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range apps {
		for _, in := range a.all() {
			wg.Go(in.stop) // ends when the instance has stopped
		}
	}
	wg.Wait()
	return h.logs.close()
}

func (a *app) all() []*instance {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*instance, 0, len(a.instances))
	for _, in := range a.instances {
		out = append(out, in)
	}
	return out
}
