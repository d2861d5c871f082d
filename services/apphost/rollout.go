package apphost

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"enjin"
	"enjin/supervisors/sandbox"
)

// switchTo starts release r's instances, waits for them to be healthy, moves traffic, and
// drains and stops the instances of other releases. If r never gets healthy, its instances
// are stopped, r is marked failed and nothing else changes. The caller holds a.deploy.
func (a *app) switchTo(ctx context.Context, r Release, progress Progress) (Release, error) {
	h := a.host
	started, err := a.startRelease(ctx, r, nil)
	if err != nil {
		a.setStatus(r.Number, "failed")
		return r, &DeployError{Release: r.Number, Err: err}
	}
	progress.send(Event{Event: "starting", Release: r.Number, Instances: len(started)})
	if reason, ok := a.waitHealthy(ctx, started); !ok {
		a.stopAll(started)
		a.setStatus(r.Number, "failed")
		h.log.Warn("release not healthy; rolled back", "tenant", a.tenant, "app", a.name, "release", r.Number, "reason", reason)
		return r, &DeployError{Release: r.Number, Reason: reason, Err: ErrUnhealthy}
	}
	progress.send(Event{Event: "healthy", Release: r.Number})
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
	h.routesChanged(a) // traffic moves: the router now picks only the new instances
	a.drain(old)
	a.stopAll(old)
	a.setStatus(r.Number, "live")
	if prev > 0 && prev != r.Number {
		a.setStatus(prev, "superseded")
	}
	h.log.Info("release live", "tenant", a.tenant, "app", a.name, "release", r.Number)
	h.cron.sync() // its scheduled jobs, as this release says
	r, _ = a.release(r.Number)
	return r, nil
}

// startRelease starts the instances release r runs here (scale overrides applied; this
// host's share of them; only those named in only, if set), after checking them against the
// policy and the tenant's quota and making sure the app's HOME is there. The caller holds
// a.deploy.
func (a *app) startRelease(ctx context.Context, r Release, only map[string]bool) ([]*instance, error) {
	h := a.host
	a.mu.Lock()
	scale, env, share := copyMap(a.scale), copyMap(a.env), a.share
	a.mu.Unlock()
	cfgs, err := Manifest(r.Manifest).Configs(a.tenant, a.name, r.Number, scale, env, h.cfg.Policy, func(string, int) (string, string) {
		return newInstanceID(), "/home/app"
	})
	if err != nil {
		return nil, err
	}
	cfgs = slices.DeleteFunc(cfgs, func(c InstanceConfig) bool { return !mine(share, c.Index) }) // the other hosts'
	if err := h.checkQuota(a, len(cfgs)); err != nil {
		return nil, err
	}
	if err := a.ensureHome(Manifest(r.Manifest).Limits().or(h.cfg.Policy.Default).DiskMB); err != nil {
		return nil, err
	}
	var started []*instance
	for _, c := range cfgs {
		if only != nil && !only[fmt.Sprintf("%s.%d", c.Type, c.Index)] {
			continue
		}
		in, err := a.start(r, c)
		if err != nil {
			a.stopAll(started)
			return nil, err
		}
		started = append(started, in)
	}
	return started, nil
}

// waitHealthy waits, up to the health timeout, until every one of ins is healthy. It gives up
// early, with the reason, when one of them keeps crashing (its immediate restarts are spent).
func (a *app) waitHealthy(ctx context.Context, ins []*instance) (*Reason, bool) {
	deadline := time.NewTimer(a.host.cfg.HealthTimeout)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		changed := a.changed
		a.mu.Unlock()
		healthy := true
		for _, in := range ins {
			in.mu.Lock()
			st, restarts := in.state, in.restarts
			in.mu.Unlock()
			if st == Crashed && restarts > restartPolicy.immediate {
				return in.reason(), false
			}
			healthy = healthy && st == Healthy
		}
		if healthy {
			return nil, true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return a.slowest(ins), false
		case <-ctx.Done():
			return &Reason{Exit: "the deploy was cancelled"}, false
		}
	}
}

// slowest is the reason of the first instance that is not healthy.
func (a *app) slowest(ins []*instance) *Reason {
	for _, in := range ins {
		if in.getState() != Healthy {
			r := in.reason()
			if r.Exit == "" {
				r.Exit = fmt.Sprintf("still %s after %v (health check %s)", in.getState(), a.host.cfg.HealthTimeout, in.cfg.Health)
			}
			return r
		}
	}
	return nil
}

// drain waits until the router has no request in flight on any of ins, up to the grace. The
// instances are out of the app's set by now, so each request ending on one wakes it.
func (a *app) drain(ins []*instance) {
	rt := a.host.cfg.Router
	deadline := time.NewTimer(a.host.cfg.Grace)
	defer deadline.Stop()
	for {
		drained := rt.Drained() // before Inflight: a request ending after the check closes it
		if !slices.ContainsFunc(ins, func(in *instance) bool { return rt.Inflight(in.id) > 0 }) {
			return
		}
		select {
		case <-drained:
		case <-deadline.C:
			return
		}
	}
}

func (a *app) stopAll(ins []*instance) {
	for _, in := range ins {
		in.stop()
		a.mu.Lock()
		delete(a.instances, in.id)
		a.notify()
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

// start runs one instance of release r as c says: a cgroup and a network namespace named by
// a fresh serial, never by the tenant's names.
func (a *app) start(r Release, c InstanceConfig) (*instance, error) {
	in, err := a.prepare(r, c)
	if err != nil {
		return nil, err
	}
	ictx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	a.mu.Lock()
	a.instances[in.id] = in
	a.notify()
	a.mu.Unlock()
	go in.run(ictx) // ends when stop cancels ictx
	return in, nil
}

// prepare readies one instance of release r as c says, not yet running: a cgroup and a
// network namespace named by a fresh serial, never by the tenant's names.
func (a *app) prepare(r Release, c InstanceConfig) (*instance, error) {
	h := a.host
	serial := h.serials.take()
	ep, err := h.cfg.Network.Attach(serial)
	if err != nil {
		return nil, err
	}
	system := h.cfg.System != nil && enjin.TenantID(a.tenant) == enjin.SystemTenant
	if system {
		if err := h.cfg.System.Allow(ep.Addr); err != nil {
			ep.Close()
			return nil, err
		}
		c.Env = append(slices.Clip(c.Env), "ENJIN_API="+h.cfg.System.API)
		if len(h.cfg.System.CA) > 0 {
			c.Env = append(c.Env, "ENJIN_CA="+string(h.cfg.System.CA))
		}
	}
	undo := func() {
		if system {
			h.cfg.System.Disallow(ep.Addr)
		}
		ep.Close()
	}
	nets, err := a.joinNetworks(c, ep.Netns)
	if err != nil {
		undo()
		return nil, err
	}
	cg := "i" + serial
	procs, err := h.cfg.Cgroups.Create(cg, sandbox.Limits{MemoryBytes: int64(c.Limits.MemoryMB) << 20,
		CPUMillis: c.Limits.CPUMillis, Pids: c.Limits.Pids})
	if err != nil {
		undo()
		return nil, err
	}
	return &instance{id: c.ID, name: fmt.Sprintf("%s.%d", c.Type, c.Index), typ: c.Type, index: c.Index, release: r.Number,
		serial: serial, cfg: c, app: a, ep: ep, system: system, nets: nets, cgroup: cg, procs: procs, state: Starting, done: make(chan struct{})}, nil
}

// newInstanceID is a random UUID (version 4): an instance's name as a ring 2 node, unique
// whatever the tenant and app are called.
func newInstanceID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
