package ring1

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
)

// maxBacklog bounds the observations kept while ring 0 does not acknowledge them: an hour of
// heartbeats at the default period. Beyond it the oldest are dropped (and counted).
const maxBacklog = 720

// heartbeats makes one observation at once and then one every period, or sooner when asked
// (drain, reconnect), until ctx ends, and delivers them in order. An observation ring 0 does
// not acknowledge stays in the backlog and is sent again, signed afresh (its payload keeps the
// time it was made), before any newer one, so an outage of ring 0 loses nothing.
func (n *Node) heartbeats(ctx context.Context, nc *nats.Conn) {
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	var backlog []enjin.Observation
	quiet := false // ring 0 stopped acknowledging; log the change, not every miss
	for {
		backlog = append(backlog, n.observe(time.Now()))
		if over := len(backlog) - maxBacklog; over > 0 {
			backlog = backlog[over:]
			n.dropped.Add(uint64(over))
		}
		backlog, quiet = n.deliver(ctx, nc, backlog, quiet)
		n.waiting.Store(uint64(len(backlog)))
		if n.revokes != nil {
			n.revokes.retry(ctx, nc)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
		}
	}
}

// deliver sends the backlog oldest first until one is not acknowledged; it returns what is
// left and whether ring 0 is quiet. While ring 0 has asked to wait (overloaded), it sends
// nothing.
func (n *Node) deliver(ctx context.Context, nc *nats.Conn, backlog []enjin.Observation, quiet bool) ([]enjin.Observation, bool) {
	if time.Now().UnixNano() < n.retryAt.Load() {
		return backlog, quiet
	}
	for len(backlog) > 0 {
		ok, refused := n.heartbeat(ctx, nc, backlog[0], quiet)
		if !ok && !refused {
			return backlog, true
		}
		if quiet && ok {
			n.log.Info("ring 0 acknowledges heartbeats again", "backlog", len(backlog)-1)
		}
		backlog, quiet = backlog[1:], false
	}
	return backlog, quiet
}

// heartbeat sends one observation and counts the outcome: acknowledged (stored), refused
// (ring 0 will never take it), or neither.
func (n *Node) heartbeat(ctx context.Context, nc *nats.Conn, obs enjin.Observation, quiet bool) (ok, refused bool) {
	sctx, cancel := context.WithTimeout(ctx, n.cfg.Heartbeat)
	defer cancel()
	sl, err := bus.SendObservation(sctx, nc, n.signer, bus.Ring1Obs(n.cfg.Node), obs)
	if re, isRemote := errors.AsType[*bus.RemoteError](err); isRemote && re.RetryAfter > 0 {
		// Overloaded, not refused: kept, and sent again after the wait, jittered (½ to 1½
		// of it) so that the nodes told alike do not all come back at once.
		n.deferred.Add(1)
		wait := re.RetryAfter/2 + rand.N(re.RetryAfter)
		n.retryAt.Store(time.Now().Add(wait).UnixNano())
		if !quiet {
			n.log.Warn("ring 0 is overloaded; keeping the heartbeat to send again", "seq", sl.Seq, "after", wait)
		}
		return false, false
	} else if isRemote {
		n.refused.Add(1)
		n.log.Warn("heartbeat refused by ring 0", "seq", sl.Seq, "reason", re.Msg)
		return false, true
	}
	if err != nil {
		if ctx.Err() == nil {
			n.unacked.Add(1)
			if !quiet {
				n.log.Warn("heartbeat not acknowledged; keeping it to send again", "seq", sl.Seq, "err", err)
			}
		}
		return false, false
	}
	n.acked.Add(1)
	n.leafDenied.Store(0)
	n.lastSeq.Store(sl.Seq)
	return true, false
}

// routerAddr is where the other hosts reach this node's router: its listen address, or — if
// that is any address — the underlay address with its port.
func (n *Node) routerAddr(underlay string) string {
	host, port, err := net.SplitHostPort(n.cfg.Apps.RouterAddr)
	ip := net.ParseIP(host)
	switch {
	case err != nil || ip == nil && host != "":
		return ""
	case host == "" || ip.IsUnspecified():
		if underlay == "" {
			return ""
		}
		return net.JoinHostPort(underlay, port)
	}
	return n.cfg.Apps.RouterAddr
}

// observe is what the node says about itself at now, and about the app instances it runs.
func (n *Node) observe(now time.Time) enjin.Observation {
	var children []enjin.Child
	if h := n.apps.Load(); h != nil {
		children = h.Children()
	}
	var vmMemory int64
	if h := n.vms.Load(); h != nil {
		children = append(children, h.Children()...)
		vmMemory = h.MemoryMB()
	}
	underlay, _ := n.underlay.Load().(string)
	var appsAPI, router string
	if n.apps.Load() != nil {
		appsAPI, router = "http://"+n.cfg.Apps.APIAddr, n.routerAddr(underlay)
		if n.cfg.Apps.APITLS != nil {
			appsAPI = "https://" + n.cfg.Apps.APIAddr
		}
	}
	return enjin.Observation{
		Underlay:   underlay,
		AppsAPI:    appsAPI,
		Router:     router,
		VMMemoryMB: vmMemory,
		Children:   children,
		Node:       n.cfg.Node,
		Ring:       enjin.Ring1,
		State:      n.state(),
		Time:       now,
		CPU:        n.usage.cpu(now),
		MemBytes:   rss(),
		Load1:      load1(),
		UptimeSec:  now.Sub(n.started).Seconds(),
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
