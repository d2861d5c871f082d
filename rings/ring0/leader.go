package ring0

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
)

// Leadership timing: a standby waits on the lease's lock (and takes over the moment it is
// free), trying again leadRetry after an error; the leader checks its lease every leaseCheck
// (each check bounded by leaseTimeout), so it stops its singleton work within leaseCheck +
// leaseTimeout of losing the database — before PostgreSQL's short keepalives on the lease's
// session (about 5 s) free the lock for another.
const (
	leadRetry    = time.Second
	leaseCheck   = 500 * time.Millisecond
	leaseTimeout = 1500 * time.Millisecond
)

// memberName names this ring 0 member in the leader record and the lease's session.
func memberName(apiAddr string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), apiAddr)
}

// lead runs ring 0's singleton work — liveness verdicts — whenever this member holds the
// leader lease, and stops it the moment the lease is lost; then it waits for the lease
// again. Every verdict carries the lease's fencing epoch, so one a deposed leader still
// sends is refused.
func (r *Ring0) lead(ctx context.Context) {
	for ctx.Err() == nil {
		l, err := r.store.Lead(ctx, r.member)
		switch {
		case l != nil:
			led := r.leadWith(ctx, l.Epoch, func(lctx context.Context) error {
				return l.Hold(lctx, leaseCheck, leaseTimeout)
			})
			l.Close()
			if led {
				continue // wait for the lease again at once
			}
		case ctx.Err() == nil:
			r.log.Warn("cannot wait for leadership", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(leadRetry):
		}
	}
}

// leadWith runs the singleton work under epoch until hold returns (the lease is lost) or ctx
// ends, and reports whether it led. A new leader first gives every node not down a fresh
// start, as ring 0 does at its own start: the old leader's last sight of them is not this
// one's to judge by.
func (r *Ring0) leadWith(ctx context.Context, epoch int64, hold func(context.Context) error) bool {
	nks, err := r.store.NodeLiveness(ctx) // the marks are the verifier's, loaded at start
	if err != nil {
		r.log.Warn("leadership: cannot load nodes; stepping down", "err", err)
		return false
	}
	r.judge.load(nks, time.Now())
	r.epoch.Store(epoch)
	r.log.Info("leading ring 0", "epoch", epoch)
	r.event("leader", map[string]any{"epoch": epoch, "member": r.member})
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.liveness(lctx, epoch) }) // ends with lctx
	wg.Go(func() { r.tendApps(lctx, epoch) }) // ends with lctx
	if r.acme.issuer != nil {
		wg.Go(func() { r.tendACME(lctx) }) // ends with lctx
	}
	err = hold(lctx)
	cancel()
	wg.Wait()
	r.epoch.Store(0)
	if ctx.Err() == nil {
		r.log.Warn("leadership lost; singleton work stopped", "epoch", epoch, "err", err)
	}
	return true
}

// Leadership names this member and returns the fencing epoch it leads with, or 0 while it
// does not lead.
func (r *Ring0) Leadership() (string, int64) { return r.member, r.epoch.Load() }
