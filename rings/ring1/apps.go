package ring1

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"enjin/services/apphost"
	"enjin/services/dns"
	"enjin/services/router"
	"enjin/services/vmhost"
	"enjin/supervisors/sandbox"
)

// AppsConfig makes a ring 1 node host tenants' apps: it runs the router, the DNS for app
// names, the app host (instances confined on a bridge) and the app API ring 0 forwards to.
type AppsConfig struct {
	Dir        string       // packages, releases, app state
	Helper     string       // the sandbox helper (the enjin binary)
	Bridge     string       // e.g. enjin0
	Prefix     netip.Prefix // e.g. 100.88.0.0/16
	RouterAddr string       // e.g. 127.0.0.1:7080
	// RouterTLSAddr is where the router serves custom domains over TLS, e.g. 127.0.0.1:7443;
	// "" serves none.
	RouterTLSAddr string
	RouterHold    time.Duration // how long a request waits for an instance of its app; 0: 2 s, negative: none
	AppsDomain    string        // e.g. apps.enjin.test
	DNSAddr       string        // e.g. 127.0.0.1:5353
	APIAddr       string        // the app API, e.g. 127.0.0.1:7071
	APIToken      string        // the bearer token ring 0 forwards with
	// APITLS serves the app API over TLS (a certificate from ring 0's CA naming the node):
	// required when APIAddr is beyond loopback.
	APITLS   *tls.Config
	Policy   apphost.Policy
	UIDFirst uint32 // app uids and gids; 0 is apphost's default range
	UIDCount uint32
}

// runApps serves apps until ctx ends, then stops every instance and listener.
func (n *Node) runApps(ctx context.Context, nc *nats.Conn, ready chan<- error) error {
	c := n.cfg.Apps
	nw, cg, err := n.appSandboxes(c)
	if err != nil {
		return err
	}
	rt, ds, err := n.appFront(c)
	if err != nil {
		return err
	}
	// Tenant networks, for VMs and app instances alike; without them neither joins one.
	tn, err := n.openNetworks(c.Bridge)
	var nets apphost.Networks
	if err != nil {
		n.log.Warn("this node carries no tenant networks", "err", err)
		tn = nil
	} else {
		defer tn.close()
		nets = newAppNetworks(n.log, nc, tn, func(vni int) {
			if h := n.vms.Load(); h != nil {
				h.ReleaseSegment(vni)
			} else if err := tn.segments.Remove(vni); err != nil {
				n.log.Warn("segment not removed", "vni", vni, "err", err)
			}
		})
	}
	x := newRoutes(rt, ds)
	// The relay to ring 0's API on the gateway, which the firewall lets only VMs that are ring 1
	// hosts and the system tenant's sandboxes reach.
	hostLn, ring0, ring0API := n.hostRelay(nw)
	var system *apphost.SystemAccess
	if hostLn != nil {
		defer hostLn.Close() // if the node fails to start; else ServeRelay closes it
		system = &apphost.SystemAccess{API: ring0API, CA: n.cfg.CA, Allow: nw.AllowHost, Disallow: nw.DisallowHost}
	}
	host, err := apphost.New(apphost.Config{Dir: c.Dir, Node: n.cfg.Node, Helper: c.Helper, Network: nw, Cgroups: cg,
		Router: x, Networks: nets, Policy: c.Policy, UIDFirst: c.UIDFirst, UIDCount: c.UIDCount, System: system, Logger: n.log})
	if err != nil {
		return err
	}
	ln, rln, tln, err := n.appListeners(c)
	if err != nil {
		return err
	}
	api := &http.Server{Addr: c.APIAddr, ReadHeaderTimeout: 5 * time.Second,
		Handler: withMetrics(host.Handler(c.APIToken), newNodeMetrics(n, rt, host), ln, c.APIToken)}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Go(func() { errs <- rt.Serve(ctx, rln) }) // ends with ctx
	if tln != nil {
		wg.Go(func() { errs <- rt.ServeTLS(ctx, tln) }) // ends with ctx
	}
	wg.Go(func() { errs <- ds.Run(ctx) }) // ends with ctx
	if hostLn != nil {
		wg.Go(func() { // ends with ctx
			if err := vmhost.ServeRelay(ctx, hostLn, ring0); err != nil {
				n.log.Error("ring 0 API relay", "err", err)
			}
		})
	}
	wg.Go(func() { // ends at Shutdown below
		if err := api.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errs <- err
		}
	})
	ids := newIdentities(n, nc)
	defer ids.close()
	host.SetLogPublisher(ids.publish)
	host.SetInstanceStopped(ids.stopped)
	// VMs keep running when the node stops: the node that starts next adopts them, guarding
	// their ports anew before any app instance's port is guarded.
	stopVMs := n.startVMs(ctx, nc, nw, tn, ids, ring0API)
	defer stopVMs()
	n.sweepSegments(tn)
	n.apps.Store(host)
	defer n.apps.Store(nil)
	n.routes.Store(x)
	defer n.routes.Store(nil)
	if err := host.Restore(ctx); err != nil {
		n.log.Error("apps not restored", "err", err)
	}
	n.log.Info("hosting apps", "router", rln.Addr(), "api", ln.Addr(), "domain", c.AppsDomain)
	ready <- nil
	var err2 error
	select {
	case <-ctx.Done():
	case err2 = <-errs:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	api.Shutdown(sctx)
	host.Close()
	wg.Wait()
	return err2
}

// appSandboxes readies what confines app instances: the bridge network, its firewall, and
// the node's cgroups.
func (n *Node) appSandboxes(c *AppsConfig) (*sandbox.Network, sandbox.Cgroups, error) {
	nw := &sandbox.Network{Bridge: c.Bridge, Prefix: c.Prefix}
	if err := nw.Ensure(); err != nil {
		return nil, nil, err
	}
	if err := nw.Firewall(); err != nil {
		return nil, nil, err
	}
	// Named for the node and its bridge: two nodes on one host (two `enjin up`, say) never
	// share, and so never sweep, each other's cgroups.
	cg, err := sandbox.DetectCgroups("enjin-" + string(n.cfg.Node) + "-" + c.Bridge)
	return nw, cg, err
}

// appFront makes the router and the DNS server, which answers the apps' names with the
// router's address.
func (n *Node) appFront(c *AppsConfig) (*router.Router, *dns.Server, error) {
	rt, err := router.New(router.Config{Addr: c.RouterAddr, AppsDomain: c.AppsDomain, Logger: n.log, Hold: c.RouterHold})
	if err != nil {
		return nil, nil, err
	}
	routerIP := net.ParseIP("127.0.0.1")
	if host, _, err := net.SplitHostPort(c.RouterAddr); err == nil && net.ParseIP(host) != nil {
		routerIP = net.ParseIP(host)
	}
	ds, err := dns.New(dns.Config{Addr: c.DNSAddr, AppsDomain: c.AppsDomain, RouterV4: routerIP, Logger: n.log})
	if err != nil {
		return nil, nil, err
	}
	return rt, ds, nil
}

// appListeners listens for the app API (TLS beyond loopback), the router and, if asked, the
// router's TLS. If one fails, those opened are closed.
func (n *Node) appListeners(c *AppsConfig) (api, rt, rtTLS net.Listener, err error) {
	fail := func(what string, err error) (net.Listener, net.Listener, net.Listener, error) {
		for _, l := range []net.Listener{api, rt} {
			if l != nil {
				l.Close()
			}
		}
		return nil, nil, nil, fmt.Errorf("ring1 %s: %s: %w", n.cfg.Node, what, err)
	}
	if api, err = net.Listen("tcp", c.APIAddr); err != nil {
		return fail("app api", err)
	}
	if c.APITLS != nil {
		api = tls.NewListener(api, c.APITLS)
	} else if !api.Addr().(*net.TCPAddr).IP.IsLoopback() {
		return fail("app api on "+c.APIAddr, errors.New("beyond loopback, needs a certificate from ring 0 (joining gives one)"))
	}
	if rt, err = net.Listen("tcp", c.RouterAddr); err != nil {
		return fail("router", err)
	}
	if c.RouterTLSAddr != "" {
		if rtTLS, err = net.Listen("tcp", c.RouterTLSAddr); err != nil {
			return fail("router tls", err)
		}
	}
	return api, rt, rtTLS, nil
}
