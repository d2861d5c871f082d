package ring0

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/netip"
	"slices"
	"sync"
	"time"

	"enjin"
	"enjin/bus"
	"enjin/services/api"
	"enjin/services/inventory"
)

// routesAgain is how often a host is told the routes even when they did not change: a host
// that restarted has none.
const routesAgain = 30 * time.Second

// routesSent is what the leader last told each host about the apps running elsewhere.
type routesSent struct {
	mu   sync.Mutex
	last map[enjin.NodeID]sentRoutes
}

type sentRoutes struct {
	sum [32]byte
	at  time.Time
}

// due reports whether host must be told routes that hash to sum.
func (s *routesSent) due(host enjin.NodeID, sum [32]byte, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.last[host]
	return !ok || l.sum != sum || now.Sub(l.at) >= routesAgain
}

func (s *routesSent) sent(host enjin.NodeID, sum [32]byte, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = map[enjin.NodeID]sentRoutes{}
	}
	s.last[host] = sentRoutes{sum, now}
}

// pushRoutes tells each of hosts (up, running apps) where every placed app it does not run
// is — the routers of the hosts running it (at: its home and its replicas; routers, as the
// hosts said), those that are up — so any host's router answers for any app.
func (r *Ring0) pushRoutes(ctx context.Context, hosts []api.AppsBackend, routers map[enjin.NodeID]string, at map[inventory.AppKey][]enjin.NodeID) {
	var wg sync.WaitGroup
	for _, h := range hosts {
		var pr bus.PeerRoutes
		for k, nodes := range at {
			for _, n := range nodes {
				// A router on loopback is reached only from its own network namespace: from
				// hosts whose routers are on loopback too, on one machine.
				if addr, ok := routers[n]; ok && n != h.Node && (!loopback(addr) || loopback(routers[h.Node])) {
					pr.Apps = append(pr.Apps, bus.PeerRoute{Tenant: k.Tenant, App: k.App, Router: addr})
				}
			}
		}
		slices.SortFunc(pr.Apps, func(a, b bus.PeerRoute) int {
			return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.App, b.App), cmp.Compare(a.Router, b.Router))
		})
		b, _ := json.Marshal(pr)
		sum, now := sha256.Sum256(b), time.Now()
		if !r.routesSent.due(h.Node, sum, now) {
			continue
		}
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, hostTimeout)
			defer cancel()
			if _, err := bus.Request[bus.PeerRoutes, struct{}](rctx, r.nc, bus.R0ToRing1Cmd(h.Node, bus.VerbRoutes), pr); err != nil {
				r.log.Debug("a host not told where the other apps run", "node", h.Node, "err", err)
				return
			}
			r.routesSent.sent(h.Node, sum, now)
		})
	}
	wg.Wait()
}

// loopback reports whether addr (ip:port) is on a loopback address.
func loopback(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && ap.Addr().IsLoopback()
}
