package ring1

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/services/apphost"
	"enjin/services/dns"
	"enjin/services/router"
)

// routes sends the app host's routes to the router and the app names to DNS, merged with
// ring 0's word of the apps that run on other hosts (SetPeers): a request for one of those
// goes to that host's router, so every host's router answers for every app. An app that runs
// here is routed here, whatever ring 0 said last.
type routes struct {
	r *router.Router
	d *dns.Server

	mu    sync.Mutex
	local map[string]bool     // by tenant/app: the app host routes it
	peers map[string][]string // by tenant/app: the routers of the hosts running it
}

func newRoutes(r *router.Router, d *dns.Server) *routes {
	return &routes{r: r, d: d, local: map[string]bool{}, peers: map[string][]string{}}
}

func (x *routes) SetRoute(tenant, app string, rs []apphost.Route) {
	bs := make([]router.Backend, len(rs))
	for i, r := range rs {
		bs[i] = router.Backend{ID: r.ID, Addr: r.Addr}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.local[tenant+"/"+app] = true
	x.r.SetRoute(tenant, app, bs)
	x.d.SetApp(tenant, app)
}

func (x *routes) RemoveRoute(tenant, app string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	k := tenant + "/" + app
	delete(x.local, k)
	if addrs, ok := x.peers[k]; ok {
		x.r.SetRoute(tenant, app, peerBackends(addrs))
		return
	}
	x.r.RemoveRoute(tenant, app)
	x.d.RemoveApp(tenant, app)
}

func (x *routes) Inflight(id string) int64 { return x.r.Inflight(id) }
func (x *routes) Drained() <-chan struct{} { return x.r.Drained() }

// SetPeers makes peers (tenant/app → host:port of the routers of the hosts running it) where
// the apps this host does not run are sent, spread over those routers.
func (x *routes) SetPeers(peers map[string][]string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k := range x.peers {
		if _, still := peers[k]; !still && !x.local[k] {
			t, a, _ := strings.Cut(k, "/")
			x.r.RemoveRoute(t, a)
			x.d.RemoveApp(t, a)
		}
	}
	for k, addrs := range peers {
		if !x.local[k] && !slices.Equal(x.peers[k], addrs) {
			t, a, _ := strings.Cut(k, "/")
			x.r.SetRoute(t, a, peerBackends(addrs))
			x.d.SetApp(t, a)
		}
	}
	x.peers = peers
}

// peerBackends are other hosts' routers as backends: a request goes on with its Host.
func peerBackends(addrs []string) []router.Backend {
	bs := make([]router.Backend, len(addrs))
	for i, addr := range addrs {
		bs[i] = router.Backend{ID: "peer/" + addr, Addr: addr, Peer: true}
	}
	return bs
}

// maxPeers bounds the routes one command may carry.
const maxPeers = 100_000

// peerRoutes takes ring 0's list of the apps that run on other hosts and where their routers
// listen.
func (n *Node) peerRoutes(m *nats.Msg) (any, error) {
	x := n.routes.Load()
	if x == nil {
		return nil, errors.New("routes: this node runs no apps")
	}
	var in bus.PeerRoutes
	if err := json.Unmarshal(m.Data, &in); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	if len(in.Apps) > maxPeers {
		return nil, fmt.Errorf("routes: %d apps; at most %d", len(in.Apps), maxPeers)
	}
	peers := make(map[string][]string, len(in.Apps))
	for _, p := range in.Apps {
		host, port, err := net.SplitHostPort(p.Router)
		if pn, perr := strconv.Atoi(port); err != nil || perr != nil || pn <= 0 || pn > 65535 || net.ParseIP(host) == nil {
			return nil, fmt.Errorf("routes: %s/%s: router %q is no ip:port", p.Tenant, p.App, p.Router)
		}
		if p.Tenant.Validate() != nil || !enjin.IsSlug(p.App) {
			return nil, fmt.Errorf("routes: %q/%q: not a tenant's app", p.Tenant, p.App)
		}
		k := string(p.Tenant) + "/" + p.App
		if !slices.Contains(peers[k], p.Router) {
			peers[k] = append(peers[k], p.Router)
		}
	}
	x.SetPeers(peers)
	return struct{}{}, nil
}
