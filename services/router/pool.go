package router

import (
	"bufio"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	maxIdlePerBackend = 256              // kept-alive connections per backend, beyond which they are closed
	probeAfter        = time.Second      // an idle connection older than this is checked before use
	maxIdleAge        = 90 * time.Second // an idle connection older than this is closed, not probed
	upReadBufSize     = 4 << 10
	failPenalty       = time.Second // how long a backend that failed is picked last
)

// upstream is one backend and its kept-alive connections. Routes share it by pointer; its
// refs count the routes holding it (guarded by Router.regMu). Once retired it is in no route:
// it takes no new request and closes each connection its last requests return.
type upstream struct {
	r        *Router
	id, addr string
	peer     bool // another host's router (Backend.Peer)
	inflight atomic.Int64
	failedAt atomic.Int64 // Unix nanoseconds of the last failure
	retired  atomic.Bool
	refs     int

	mu   sync.Mutex
	idle []*upConn // most recently used last
}

// upConn is one connection to a backend, with its read buffer.
type upConn struct {
	nc     net.Conn
	w      io.Writer // nc, or a faster way to write to it
	br     *bufio.Reader
	since  time.Time // when it went idle
	reused bool      // it served a request before this one
	rd, wd deadline
}

func newUpstream(r *Router, b Backend) *upstream {
	return &upstream{r: r, id: b.ID, addr: b.Addr, peer: b.Peer}
}

// get returns a kept-alive connection, checking it if it idled long, or dials a new one.
func (u *upstream) get(now time.Time) (*upConn, error) {
	for {
		u.mu.Lock()
		n := len(u.idle)
		if n == 0 {
			u.mu.Unlock()
			break
		}
		uc := u.idle[n-1]
		u.idle[n-1] = nil
		u.idle = u.idle[:n-1]
		u.mu.Unlock()
		idle := now.Sub(uc.since)
		if idle < probeAfter || idle < maxIdleAge && alive(uc.nc) {
			uc.reused = true
			return uc, nil
		}
		uc.nc.Close()
	}
	nc, err := u.r.dialer.Dial("tcp", u.addr)
	if err != nil {
		return nil, err
	}
	t := u.r.cfg.UpstreamTimeout
	rw := newRawIO(nc)
	return &upConn{
		nc: nc,
		w:  rw,
		br: bufio.NewReaderSize(rw, upReadBufSize),
		rd: deadline{nc: nc, timeout: t},
		wd: deadline{nc: nc, timeout: t, write: true},
	}, nil
}

// put keeps uc for the next request, unless the backend is retired or has enough idle
// connections already.
func (u *upstream) put(uc *upConn, now time.Time) {
	if uc.br.Buffered() > 0 { // bytes nobody asked for: the stream is out of step
		uc.nc.Close()
		return
	}
	uc.since = now
	u.mu.Lock()
	if u.retired.Load() || len(u.idle) >= maxIdlePerBackend {
		u.mu.Unlock()
		uc.nc.Close()
		return
	}
	u.idle = append(u.idle, uc)
	u.mu.Unlock()
}

// done ends one request counted in flight on u. The last one to end on a retired upstream
// wakes whoever waits for it to drain.
func (u *upstream) done() {
	if u.inflight.Add(-1) == 0 && u.retired.Load() {
		u.r.signalDrained()
	}
}

// retire marks u as in no route and closes its idle connections.
func (u *upstream) retire() {
	u.retired.Store(true)
	u.dropIdle()
}

// dropIdle closes u's idle connections.
func (u *upstream) dropIdle() {
	u.mu.Lock()
	idle := u.idle
	u.idle = nil
	u.mu.Unlock()
	for _, uc := range idle {
		uc.nc.Close()
	}
}
