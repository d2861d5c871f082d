// Package apphost runs tenants' apps on a ring 1 node: it keeps bundles in a content-addressed
// package store, turns each deploy into an immutable numbered release, and runs every
// release's instances as ring 2 nodes under a watchdog that restarts them by policy and takes
// them out of the router while they fail their health check.
//
// Every tenant is hostile, and every instance is walled in by the process strategy's sandbox:
// a uid/gid of its app's own (from a registry, never derived from names), its own PID, mount,
// IPC, UTS and network namespaces (a veth on the ring's bridge), a read-only view of the OS
// with its release at /app and its HOME — a file system of the app's own, of the app's disk
// size — at /home/app, a private size-bounded /tmp, seccomp, no capabilities, and cgroup
// limits on memory, CPU and processes that apply even when the app asks for none. Names of
// instances, namespaces, devices and cgroups are allocated, never built from tenant input,
// so no tenant can choose one that another uses. Whatever a tenant controls is checked at
// the edge (a *FieldError) and whatever its processes do is contained: a panic while serving
// one app is recovered and marks only that app's instance unhealthy.
//
// Deploys are zero-downtime: the new release's instances must all be healthy before traffic
// moves to them; the old ones are drained (no request in flight) and then stopped. A release
// that is not healthy within the health timeout — or whose instances keep crashing — is
// stopped with the reason (exit status, last log lines), and the old one keeps serving.
// After a restart of the node, Restore kills whatever an earlier run left behind (by cgroup),
// removes its namespaces and devices, and starts every live release again.
//
// Ring 1 runs apphost; ring 0, services/backup and cmd/enjin import it for its types and its
// export format. apphost imports the process supervisor, appapi and enjin (the vocabulary).
package apphost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"enjin"
	"enjin/supervisors/sandbox"
)

// Route is an instance the router may send an app's requests to.
type Route struct{ ID, Addr string }

// Router is the part of the HTTP router apphost drives.
type Router interface {
	SetRoute(tenant, app string, backends []Route)
	RemoveRoute(tenant, app string)
	Inflight(id string) int64
	Drained() <-chan struct{} // closed when a request ends on a backend in no set, leaving it none in flight
}

// Config configures a host. Zero values take the defaults noted.
type Config struct {
	Dir           string       // packages/, apps/, staging/ and the sandbox root live here (root only)
	Node          enjin.NodeID // the ring 1 node running the apps
	Helper        string       // the sandbox helper binary (enjin)
	Network       *sandbox.Network
	Cgroups       sandbox.Cgroups
	Router        Router
	Networks      Networks      // nil: instances join no tenant network (a manifest naming one fails)
	Policy        Policy        // limits per instance and quotas; the zero value is DefaultPolicy()
	UIDFirst      uint32        // first uid/gid for apps; 0 is 700000000 (above login.defs' SUB_UID_MAX)
	UIDCount      uint32        // how many; 0 is 100000
	UIDRegistry   string        // the host's uid registry, shared by its nodes; "" is /var/lib/enjin/uids
	KeepReleases  int           // releases kept besides the live one; 0 is 10
	Grace         time.Duration // SIGTERM to SIGKILL; 0 is 30 s
	HealthTimeout time.Duration // a new release must be healthy within this; 0 is 60 s
	HealthEvery   time.Duration // 0 is 500 ms (100 ms while an instance starts)
	System        *SystemAccess // how the system tenant's sandboxes reach ring 0's API; nil: they do not
	Logger        *slog.Logger
}

// SystemAccess lets the sandboxes of the system tenant (enjin.SystemTenant) — and no other
// tenant's — reach ring 0's API, through the node's relay, for the cloud's own chores
// (scheduled backups). Each instance and job of that tenant is let through the firewall for
// as long as it runs and told where the API is, as the CLI reads it: ENJIN_API, and ENJIN_CA
// (the CA's PEM) if it speaks https (its certificate names ring 0, keys.Ring0Name). What it
// may do there is what its credential allows. The node's enjin binary is shown to them,
// read-only, at SystemBinary, so their chores need not ship one.
type SystemAccess struct {
	API             string // the relay, as sandboxes dial it, e.g. http://100.88.0.1:4280
	CA              []byte // the CA ring 0's certificate chains to, for an https API
	Allow, Disallow func(netip.Addr) error
}

// Host runs apps. Its methods are safe for concurrent use; deploys of one app are serialized.
type Host struct {
	cfg     Config
	log     *slog.Logger
	uids    *uids
	serials *serials

	pkgs sync.RWMutex // held for reading from storing a package to recording its release; pruning writes

	mu      sync.Mutex
	apps    map[string]*app // by tenant/name
	logs    *logBook
	stopped func(tenant, app, instance string) // set under logs.mu
	cron    *scheduler
}

// New returns a host; it starts nothing until apps are deployed or restored.
func New(cfg Config) (*Host, error) {
	if cfg.Dir == "" || cfg.Helper == "" || cfg.Network == nil || cfg.Cgroups == nil || cfg.Router == nil {
		return nil, errors.New("apphost: Dir, Helper, Network, Cgroups and Router are required")
	}
	if cfg.Policy == (Policy{}) {
		cfg.Policy = DefaultPolicy()
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("apphost: policy: %w", err)
	}
	cfg.UIDFirst = cmp(cfg.UIDFirst, 700_000_000)
	cfg.UIDCount = cmp(cfg.UIDCount, 100000)
	cfg.UIDRegistry = cmp(cfg.UIDRegistry, "/var/lib/enjin/uids")
	cfg.KeepReleases = cmp(cfg.KeepReleases, 10)
	cfg.Grace = cmp(cfg.Grace, 30*time.Second)
	cfg.HealthTimeout = cmp(cfg.HealthTimeout, 60*time.Second)
	cfg.HealthEvery = cmp(cfg.HealthEvery, 500*time.Millisecond)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("apphost: %w", err)
	}
	cfg.Dir = abs
	ids, err := newUIDs(cfg.UIDRegistry, cfg.UIDFirst, cfg.UIDCount)
	if err != nil {
		return nil, err
	}
	// Only root enters any of these: an instance reaches its own release and HOME through
	// the binds of its sandbox, never through these paths.
	for _, d := range []string{"", "packages", "apps", "staging", "sandbox"} {
		p := filepath.Join(cfg.Dir, d)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, fmt.Errorf("apphost: %w", err)
		}
		if err := os.Chmod(p, 0o700); err != nil {
			return nil, fmt.Errorf("apphost: %w", err)
		}
	}
	// Unpacks and uploads a crashed run left half done.
	if es, err := os.ReadDir(filepath.Join(cfg.Dir, "staging")); err == nil {
		for _, e := range es {
			os.RemoveAll(filepath.Join(cfg.Dir, "staging", e.Name()))
		}
	}
	if ups, err := filepath.Glob(filepath.Join(cfg.Dir, "packages", "upload-*")); err == nil {
		for _, u := range ups {
			os.Remove(u)
		}
	}
	h := &Host{cfg: cfg, log: cfg.Logger.With("ring", 1), uids: ids, serials: newSerials(filepath.Join(cfg.Dir, "serial")),
		apps: map[string]*app{}, logs: newLogBook(filepath.Join(cfg.Dir, "apps"))}
	h.cron = newScheduler(h)
	return h, nil
}

// cmp is v, or def when v is the zero value.
func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// app is one tenant's app and its running instances.
type app struct {
	host         *Host
	tenant, name string
	uid          uint32

	deploy sync.Mutex // one deploy, scale, rollback or destroy at a time

	mu        sync.Mutex
	releases  []Release
	current   int // live release, 0 before the first
	scale     map[string]int
	env       map[string]string
	share     Share // which of its instances run here (Spread)
	from      int   // for a copy of an app living on another host: the release there it runs
	instances map[string]*instance
	changed   chan struct{}                    // closed and replaced whenever an instance's state changes
	jobs      map[*instance]context.CancelFunc // one-off and scheduled jobs running, and how to stop each
	jobsDone  sync.WaitGroup                   // one count per entry of jobs
}

func key(tenant enjin.TenantID, name string) string { return string(tenant) + "/" + name }

func (a *app) dir() string                  { return filepath.Join(a.host.cfg.Dir, "apps", a.tenant, a.name) }
func (a *app) homeDir() string              { return filepath.Join(a.dir(), "home") }
func (a *app) homeImage() string            { return filepath.Join(a.dir(), "home.img") }
func (a *app) releaseDir(n int) string      { return filepath.Join(a.dir(), "releases", strconv.Itoa(n)) }
func (h *Host) packagePath(d string) string { return filepath.Join(h.cfg.Dir, "packages", d+".tar.gz") }
func (h *Host) sandboxRoot() string         { return filepath.Join(h.cfg.Dir, "sandbox") }

// SystemBinary is where the system tenant's sandboxes find the node's enjin binary.
const SystemBinary = "/opt/enjin/enjin"

// appFor returns the app, creating its directories and claiming its uid the first time.
func (h *Host) appFor(tenant enjin.TenantID, name string) (*app, error) {
	if err := tenant.Validate(); err != nil {
		return nil, fmt.Errorf("apphost: %w", err)
	}
	if !enjin.IsSlug(name) {
		return nil, fmt.Errorf("apphost: app name %q: %w", name, enjin.ErrBadName)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.apps[key(tenant, name)]; ok {
		return a, nil
	}
	a := &app{host: h, tenant: string(tenant), name: name, scale: map[string]int{}, env: map[string]string{},
		instances: map[string]*instance{}, changed: make(chan struct{})}
	if err := os.MkdirAll(filepath.Join(a.dir(), "releases"), 0o700); err != nil {
		return nil, fmt.Errorf("apphost: %w", err)
	}
	saved := a.load()
	uid, err := h.uids.claim(a.dir(), saved)
	if err != nil {
		return nil, err
	}
	a.uid = uid
	if uid != saved {
		a.mu.Lock()
		err = a.save()
		a.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("apphost: %w", err)
		}
	}
	h.apps[key(tenant, name)] = a
	return a, nil
}

// state is what is kept of an app across restarts of the node.
type state struct {
	UID      uint32            `json:"uid"`
	Releases []Release         `json:"releases"`
	Current  int               `json:"current"`
	Scale    map[string]int    `json:"scale"`
	Env      map[string]string `json:"env"`
	Share    Share             `json:"share,omitzero"`
	From     int               `json:"from,omitempty"`
}

// load reads the app's state and returns the uid it had.
func (a *app) load() uint32 {
	b, err := os.ReadFile(filepath.Join(a.dir(), "app.json"))
	if err != nil {
		return 0
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		a.host.log.Error("app state unreadable; starting it afresh", "tenant", a.tenant, "app", a.name, "err", err)
		return 0
	}
	a.releases, a.current = s.Releases, s.Current
	if s.Scale != nil {
		a.scale = s.Scale
	}
	if s.Env != nil {
		a.env = s.Env
	}
	a.share, a.from = s.Share, s.From
	return s.UID
}

// save writes the app's state; the caller holds a.mu (or owns a alone).
func (a *app) save() error {
	b, _ := json.MarshalIndent(state{UID: a.uid, Releases: a.releases, Current: a.current, Scale: a.scale, Env: a.env,
		Share: a.share, From: a.from}, "", "  ")
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

// notify wakes whoever waits for the app's instances to change; the caller holds a.mu.
func (a *app) notify() {
	close(a.changed)
	a.changed = make(chan struct{})
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

// allApps is every app the host has, as of now.
func (h *Host) allApps() []*app {
	h.mu.Lock()
	defer h.mu.Unlock()
	apps := make([]*app, 0, len(h.apps))
	for _, a := range h.apps {
		apps = append(apps, a)
	}
	return apps
}

// Close stops every instance of every app and unmounts their HOMEs.
func (h *Host) Close() error {
	h.cron.close() // no job starts from here on; running ones are stopped
	apps := h.allApps()
	var wg sync.WaitGroup
	for _, a := range apps {
		for _, in := range a.all() {
			wg.Go(in.stop) // ends when the instance has stopped
		}
	}
	wg.Wait()
	for _, a := range apps {
		if err := a.unmountHome(); err != nil {
			h.log.Warn("home not unmounted", "tenant", a.tenant, "app", a.name, "err", err)
		}
	}
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
