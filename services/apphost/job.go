package apphost

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"enjin"
)

// MaxJobCommand bounds a job's command line.
const MaxJobCommand = 4096

// Run runs command once (with /bin/sh -c) as an instance of tenant's app runs, but routed to
// by nobody: the live release, its environment and limits (the web type's, else the first
// type's), its HOME and tenant networks, in a sandbox of its own that counts against the
// tenant's instances while it runs. Each line it writes goes to out as it comes (and to the
// app's log, as process run.N). Run returns its exit status once it ends; when ctx ends
// first, it is stopped (SIGTERM, then killed after the grace) and Run returns ctx's error.
func (h *Host) Run(ctx context.Context, tenant enjin.TenantID, name, command string, out func(LogLine)) (int, error) {
	return h.run(ctx, tenant, name, command, "run", out)
}

// run is Run, the job's process named kind.N in the app's log.
func (h *Host) run(ctx context.Context, tenant enjin.TenantID, name, command, kind string, out func(LogLine)) (int, error) {
	if strings.TrimSpace(command) == "" || len(command) > MaxJobCommand || strings.IndexByte(command, 0) >= 0 {
		return -1, &FieldError{Field: "command", Msg: fmt.Sprintf("want 1 to %d bytes of shell command, without NUL", MaxJobCommand)}
	}
	a, r, err := h.liveLocked(tenant, name)
	if err != nil {
		return -1, err
	}
	c, err := a.jobConfig(r, command)
	if err == nil {
		err = h.checkQuota(a, 1)
	}
	var in *instance
	if err == nil {
		in, err = a.prepare(r, c)
	}
	// Registered before a destroy, which waits for the deploy lock, can look: it stops the job.
	jctx, stop := context.WithCancel(ctx)
	defer stop()
	if err == nil {
		a.addJob(in, stop)
		defer a.jobEnded(in)
	}
	a.deploy.Unlock() // a deploy may go on while the job runs: it keeps the release it started with
	if err != nil {
		return -1, err
	}
	in.name, in.sink = kind+"."+in.serial, out
	h.log.Info("job started", "tenant", a.tenant, "app", a.name, "job", in.name, "release", r.Number)
	defer in.teardown()
	err = in.once(jctx)
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	if jctx.Err() != nil {
		return -1, errors.New("stopped: the app was destroyed")
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		h.log.Info("job ended", "tenant", a.tenant, "app", a.name, "job", in.name, "exit", ee.ExitCode())
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	h.log.Info("job ended", "tenant", a.tenant, "app", a.name, "job", in.name, "exit", 0)
	return 0, nil
}

// addJob records a job of the app that is starting, and how to stop it.
func (a *app) addJob(in *instance, stop context.CancelFunc) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.jobs == nil {
		a.jobs = map[*instance]context.CancelFunc{}
	}
	a.jobs[in] = stop
	a.jobsDone.Add(1)
}

// jobEnded forgets a job once it has ended and its sandbox is gone.
func (a *app) jobEnded(in *instance) {
	a.mu.Lock()
	delete(a.jobs, in)
	a.mu.Unlock()
	a.jobsDone.Done()
}

// stopJobs stops the app's jobs and waits until their sandboxes are gone. The caller holds
// a.deploy, so no job starts meanwhile.
func (a *app) stopJobs() {
	a.mu.Lock()
	for _, stop := range a.jobs {
		stop()
	}
	a.mu.Unlock()
	a.jobsDone.Wait()
}

// jobConfig is a job's instance configuration: one of release r's types (web, else the
// first), as one instance of it would run, with command instead of its own and no health
// check. The caller holds a.deploy.
func (a *app) jobConfig(r Release, command string) (InstanceConfig, error) {
	a.mu.Lock()
	env := copyMap(a.env)
	a.mu.Unlock()
	one := map[string]int{}
	for t := range r.Manifest.Procfile {
		one[t] = 1
	}
	cfgs, err := Manifest(r.Manifest).Configs(a.tenant, a.name, r.Number, one, env, a.host.cfg.Policy, func(string, int) (string, string) {
		return newInstanceID(), "/home/app"
	})
	if err != nil {
		return InstanceConfig{}, err
	}
	if len(cfgs) == 0 {
		return InstanceConfig{}, fmt.Errorf("apphost: app %s/%s: its release has no process type", a.tenant, a.name)
	}
	i := max(0, slices.IndexFunc(cfgs, func(c InstanceConfig) bool { return c.Type == "web" }))
	c := cfgs[i]
	c.Command, c.Health = command, ""
	return c, nil
}
