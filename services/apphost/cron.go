package apphost

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"enjin"
)

// cronSync is how often the scheduler looks again at every app's live release for its jobs;
// a deploy that goes live looks at once.
const cronSync = 10 * time.Second

// scheduler runs the scheduled jobs of the apps whose home is this host.
type scheduler struct {
	h      *Host
	c      *cron.Cron
	ctx    context.Context // ends with Close: running jobs are stopped
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	entries map[string]*cronEntry // by tenant/app/name
}

type cronEntry struct {
	id            cron.EntryID
	tenant        enjin.TenantID
	app, name     string
	job           CronJob
	running       bool
	runs, skipped int
	last          *CronRun
}

func newScheduler(h *Host) *scheduler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &scheduler{h: h, c: cron.New(cron.WithParser(cronParser)), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), entries: map[string]*cronEntry{}}
	s.c.Start()
	go s.loop() // ends with close
	return s
}

func (s *scheduler) loop() {
	defer close(s.done)
	t := time.NewTicker(cronSync)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.sync()
		}
	}
}

// close stops scheduling, stops running jobs and waits for them.
func (s *scheduler) close() {
	s.cancel()
	<-s.done
	<-s.c.Stop().Done()
}

// sync brings the schedule in step with every app's live release on this host: jobs of apps
// that live here (not copies of apps living elsewhere) are added, changed ones replaced, and
// those no live release names any more removed.
func (s *scheduler) sync() {
	want := map[string]*cronEntry{}
	for _, a := range s.h.allApps() {
		a.mu.Lock()
		r, live := a.release(a.current)
		copied := a.from != 0
		a.mu.Unlock()
		if !live || copied {
			continue
		}
		for name, j := range r.Manifest.Cron {
			want[a.tenant+"/"+a.name+"/"+name] = &cronEntry{tenant: enjin.TenantID(a.tenant), app: a.name, name: name, job: j}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.entries {
		if w, ok := want[k]; !ok || w.job != e.job {
			s.c.Remove(e.id)
			delete(s.entries, k)
		}
	}
	for k, w := range want {
		if _, ok := s.entries[k]; ok {
			continue
		}
		id, err := s.c.AddFunc(w.job.Schedule, func() { s.run(k) })
		if err != nil { // checked at deploy; a release stored before the rule is not scheduled
			s.h.log.Warn("scheduled job not scheduled", "job", k, "err", err)
			continue
		}
		w.id = id
		s.entries[k] = w
	}
}

// run runs scheduled job k once, unless its previous run still runs.
func (s *scheduler) run(k string) {
	s.mu.Lock()
	e, ok := s.entries[k]
	if !ok || e.running {
		if ok {
			e.skipped++
		}
		s.mu.Unlock()
		return
	}
	e.running = true
	tenant, app, name, command := e.tenant, e.app, e.name, e.job.Command
	s.mu.Unlock()
	start := time.Now()
	exit, err := s.h.run(s.ctx, tenant, app, command, "cron."+name, nil)
	r := &CronRun{Started: start, Took: time.Since(start).Seconds(), Exit: exit}
	if err != nil {
		r.Exit, r.Error = -1, err.Error()
	}
	if errors.Is(err, context.Canceled) && s.ctx.Err() != nil {
		r.Error = "stopped: the host is stopping"
	}
	s.mu.Lock()
	e.running, e.last = false, r
	e.runs++
	s.mu.Unlock()
}

// CronStatus lists tenant's app's scheduled jobs as this host runs them (none on a host
// where only a copy of the app runs).
func (h *Host) CronStatus(tenant enjin.TenantID, name string) ([]CronStatus, error) {
	a, err := h.existing(tenant, name)
	if err != nil {
		return nil, err
	}
	h.cron.sync()
	prefix := a.tenant + "/" + a.name + "/"
	s := h.cron
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []CronStatus{}
	for k, e := range s.entries {
		if len(k) <= len(prefix) || k[:len(prefix)] != prefix {
			continue
		}
		st := CronStatus{Name: e.name, Schedule: e.job.Schedule, Command: e.job.Command, Next: s.c.Entry(e.id).Next,
			Runs: e.runs, Skipped: e.skipped}
		if e.last != nil {
			l := *e.last
			st.Last = &l
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
