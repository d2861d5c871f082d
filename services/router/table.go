package router

import (
	"maps"
	"net/netip"
	"strings"
	"sync/atomic"
)

// Backend is one instance of an app that the router may send requests to.
type Backend struct {
	ID   string // unique among all backends, such as the ring 2 node's id
	Addr string // ip:port
	// Peer marks another host's router (serving the app there): a request that came through
	// a router already (it carries Enjin-Hop) is never sent to one, so two routers with
	// stale word of where an app runs cannot send its requests back and forth.
	Peer bool
}

// table is an immutable snapshot of every route, keyed by "app.tenant" in lower case.
type table struct {
	routes map[string]*route
}

// route is one app's healthy set at one moment. Only next changes after it is published.
type route struct {
	backends []*upstream
	next     atomic.Uint32 // where the next least-inflight scan starts
	noneMsg  string        // the 503 body when backends is empty
	gone     chan struct{} // closed once a newer set replaces this one, or the app is removed
	stats    *appStats     // the app's, carried from set to set
}

// SetRoute makes tenant's app routable to exactly backends, replacing the previous set in one
// step. An empty set keeps the app known, with every request answered 503. Requests already
// in flight are not disturbed; a backend that is in no set any more gets no new request once
// SetRoute returns, and its idle connections are closed.
func (r *Router) SetRoute(tenant, app string, backends []Backend) {
	key := routeName(tenant, app)
	r.regMu.Lock()
	defer r.regMu.Unlock()
	rt := &route{noneMsg: "no healthy instance of app " + key + "\n", gone: make(chan struct{}),
		stats: &appStats{tenant: strings.ToLower(tenant), app: strings.ToLower(app)}}
	if prev := r.table.Load().routes[key]; prev != nil {
		rt.stats = prev.stats
	}
	for _, b := range backends {
		u := r.upstreamFor(b)
		u.refs++
		rt.backends = append(rt.backends, u)
	}
	r.replace(key, rt)
}

// RemoveRoute forgets tenant's app: its host gets 404 again.
func (r *Router) RemoveRoute(tenant, app string) {
	key := routeName(tenant, app)
	r.regMu.Lock()
	defer r.regMu.Unlock()
	r.replace(key, nil)
}

func routeName(tenant, app string) string { return strings.ToLower(app + "." + tenant) }

// replace publishes a table in which key routes to rt (nil: removed) and retires the
// upstreams the old route held that no route holds any more. The caller holds regMu.
func (r *Router) replace(key string, rt *route) {
	old := r.table.Load()
	routes := maps.Clone(old.routes)
	if rt == nil {
		delete(routes, key)
	} else {
		routes[key] = rt
	}
	r.table.Store(&table{routes: routes})
	if prev := old.routes[key]; prev != nil {
		close(prev.gone) // requests held for the app look again
		for _, u := range prev.backends {
			if u.refs--; u.refs == 0 {
				u.retire() // after the Store: see proxy's pick for why the order matters
				if u.peer {
					r.countPeer(u.addr, -1)
				}
			}
		}
		for _, u := range prev.backends {
			r.prune(u.id)
		}
	}
}

// upstreamFor returns the live upstream for b, or registers a new one. A backend that
// reappears after it was retired gets a new upstream; the old one drains on its own.
func (r *Router) upstreamFor(b Backend) *upstream {
	for _, u := range r.reg[b.ID] {
		if u.addr == b.Addr && u.peer == b.Peer && !u.retired.Load() {
			return u
		}
	}
	u := newUpstream(r, b)
	r.reg[b.ID] = append(r.reg[b.ID], u)
	if b.Peer {
		r.countPeer(u.addr, 1)
	}
	return u
}

// countPeer adds d to the live upstreams of the peer router at addr (ip:port), publishing a
// new set of peer addresses when one comes or goes. The caller holds regMu.
func (r *Router) countPeer(addr string, d int) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return
	}
	ip := ap.Addr().Unmap()
	old := r.peers.Load()
	m := map[netip.Addr]int{}
	if old != nil {
		m = maps.Clone(*old)
	}
	if m[ip] += d; m[ip] <= 0 {
		delete(m, ip)
	}
	r.peers.Store(&m)
}

// isPeer reports whether ip (as the forwarding fields write it) is a peer router's.
func (r *Router) isPeer(ip []byte) bool {
	m := r.peers.Load()
	if m == nil || len(*m) == 0 {
		return false
	}
	a, err := netip.ParseAddr(string(ip))
	return err == nil && (*m)[a] > 0
}

// prune drops id's retired upstreams that serve nothing any more. The caller holds regMu.
func (r *Router) prune(id string) {
	us := r.reg[id]
	kept := us[:0]
	for _, u := range us {
		if !u.retired.Load() || u.inflight.Load() > 0 {
			kept = append(kept, u)
		}
	}
	clear(us[len(kept):])
	if len(kept) == 0 {
		delete(r.reg, id)
	} else {
		r.reg[id] = kept
	}
}

// Inflight returns how many requests the backend with this ID is serving now, counting
// those that started before it was removed from its app's set. Once a backend is in no set
// and Inflight has returned 0, it gets no more requests and may be stopped.
func (r *Router) Inflight(backendID string) int64 {
	r.regMu.Lock()
	defer r.regMu.Unlock()
	var n int64
	for _, u := range r.reg[backendID] {
		n += u.inflight.Load()
	}
	r.prune(backendID)
	return n
}

// Drained returns a channel closed the next time a request ends on a backend that is in no
// app's set, leaving it none in flight. Draining is Inflight's wait made a wait on a signal:
// take the channel, check Inflight, and while it is above 0 wait for the channel (then take
// the new one and check again).
func (r *Router) Drained() <-chan struct{} {
	r.drainMu.Lock()
	defer r.drainMu.Unlock()
	if r.drained == nil {
		r.drained = make(chan struct{})
	}
	return r.drained
}

// signalDrained closes the channel Drained handed out, if any.
func (r *Router) signalDrained() {
	r.drainMu.Lock()
	defer r.drainMu.Unlock()
	if r.drained != nil {
		close(r.drained)
		r.drained = nil
	}
}

// lookup returns the route for key ("app.tenant"), or nil.
func (r *Router) lookup(key []byte) *route {
	return r.table.Load().routes[string(key)]
}

// pick returns the backend of rt with the fewest requests in flight — no peer router if
// hopped —, other than skip when there is a choice, scanning from a rotating start so that ties are served round robin.
// A backend that failed in the last second (as of now, in Unix nanoseconds) comes last. It
// returns nil when rt has no backend.
func (rt *route) pick(skip *upstream, now int64, hopped bool) *upstream {
	bs := rt.backends
	switch {
	case len(bs) == 0 || len(bs) == 1 && hopped && bs[0].peer:
		return nil
	case len(bs) == 1:
		return bs[0]
	}
	start := int(rt.next.Add(1) % uint32(len(bs)))
	var best *upstream
	bestN := int64(1<<63 - 1)
	for i := range bs {
		u := bs[(start+i)%len(bs)]
		n := u.inflight.Load()
		if now-u.failedAt.Load() < int64(failPenalty) {
			n += 1 << 40
		}
		if n < bestN && u != skip && !(hopped && u.peer) {
			best, bestN = u, n
		}
	}
	if best == nil && !(hopped && bs[start].peer) {
		best = bs[start]
	}
	return best
}
