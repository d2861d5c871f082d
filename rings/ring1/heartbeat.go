package ring1

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"enjin/bus"
	"enjin/rings"
)

// heartbeats sends one heartbeat at once and then one every period, or sooner when asked
// (drain, reconnect), until ctx ends. A heartbeat that is not acknowledged is not resent.
func (n *Node) heartbeats(ctx context.Context, nc *nats.Conn) {
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	quiet := false // ring 0 stopped acknowledging; log the change, not every miss
	for {
		quiet = n.heartbeat(ctx, nc, quiet)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
		}
	}
}

// heartbeat sends one observation and counts the outcome; it returns whether ring 0 is quiet.
func (n *Node) heartbeat(ctx context.Context, nc *nats.Conn, quiet bool) bool {
	obs := n.observe(time.Now())
	sctx, cancel := context.WithTimeout(ctx, n.cfg.Heartbeat)
	defer cancel()
	sl, err := bus.SendObservation(sctx, nc, n.signer, bus.Ring1Obs(n.cfg.Node), obs)
	if re, ok := errors.AsType[*bus.RemoteError](err); ok {
		n.refused.Add(1)
		n.log.Warn("heartbeat refused by ring 0", "seq", sl.Seq, "reason", re.Msg)
		return false
	}
	if err != nil {
		if ctx.Err() != nil {
			return quiet // stopping, not a miss
		}
		n.unacked.Add(1)
		if !quiet {
			n.log.Warn("heartbeat not acknowledged; carrying on", "seq", sl.Seq, "err", err)
		}
		return true
	}
	n.acked.Add(1)
	n.lastSeq.Store(sl.Seq)
	if quiet {
		n.log.Info("ring 0 acknowledges heartbeats again", "seq", sl.Seq)
	}
	return false
}

// observe is what the node says about itself at now, and about the app instances it runs.
func (n *Node) observe(now time.Time) rings.Observation {
	var children []rings.Child
	if h := n.apps.Load(); h != nil {
		children = h.Children()
	}
	return rings.Observation{
		Children:  children,
		Node:      n.cfg.Node,
		Ring:      rings.Ring1,
		State:     n.state(),
		Time:      now,
		CPU:       n.usage.cpu(now),
		MemBytes:  rss(),
		Load1:     load1(),
		UptimeSec: now.Sub(n.started).Seconds(),
	}
}

// sampler turns the process's cumulative CPU time into a fraction of one core per interval.
type sampler struct {
	at   time.Time
	used time.Duration
}

func newSampler() *sampler { return &sampler{at: time.Now(), used: cpuTime()} }

// cpu is the fraction of one core the process used since the previous call (or New).
func (s *sampler) cpu(now time.Time) float64 {
	used := cpuTime()
	wall := now.Sub(s.at)
	frac := 0.0
	if wall > 0 && used >= s.used {
		frac = float64(used-s.used) / float64(wall)
	}
	s.at, s.used = now, used
	return frac
}

// cpuTime is the user and system CPU time the process has used, or 0 if unknown.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rss is the process's resident memory from /proc/self/statm, or 0 if unknown.
func rss() uint64 {
	f := procField("/proc/self/statm", 1) // size resident shared …, in pages
	pages, err := strconv.ParseUint(f, 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// load1 is the host's one-minute load average from /proc/loadavg, or 0 if unknown.
func load1() float64 {
	l, err := strconv.ParseFloat(procField("/proc/loadavg", 0), 64)
	if err != nil {
		return 0
	}
	return l
}

// procField returns the i-th space-separated field of a small /proc file, or "".
func procField(path string, i int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	f := bytes.Fields(b)
	if i >= len(f) {
		return ""
	}
	return string(f[i])
}
