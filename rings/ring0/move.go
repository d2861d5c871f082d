package ring0

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"enjin"
	"enjin/services/api"
	"enjin/services/appapi"
	"enjin/services/apphost"
	"enjin/services/inventory"
)

// Re-placing apps off hosts that went down. The leader keeps, for every placed app, what it
// takes to run it elsewhere (its live release's package, environment and scale: a recipe,
// read from the host that runs it, every appsEvery); when a host goes down, each app placed
// there goes to another host that is up and runs apps, by signed bids (the winner hosts the
// tenant from then on, if it did not), and runs there from the recipe; when the host comes
// back, its copies of the apps that moved are retired (destroyed, their HOME kept aside).
const (
	appsEvery = 2 * time.Second // how often the leader tends the placed apps
	// maxKept bounds the package of an app ring 0 keeps to re-place it: a tenant's bundle is
	// held whole in ring 0's memory on its way to the store and back, carriers at a time. An
	// app whose live release is bigger is not kept, and stays put when its host goes down.
	maxKept     = 64 << 20
	moveRetry   = 30 * time.Second // an app that could not move is tried again after this
	hostTimeout = 5 * time.Second  // a host's list of the apps it runs, or an export
)

// appMoves is the leader's bookkeeping of moves under way or failed.
type appMoves struct {
	mu      sync.Mutex
	busy    map[any]time.Time           // by app (inventory.AppKey) or spreadKey: in hand until, or not before (failed)
	tooBig  map[inventory.AppKey]string // the live package (digest) of an app over maxKept
	kick    chan struct{}               // a host went down: tend now
	carrier chan struct{}               // a slot for a package in ring 0's memory
}

// take reports whether app k (or a host's part in spreading it) may be worked on now, and
// marks it in hand if so.
func (m *appMoves) take(k any, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy == nil {
		m.busy = map[any]time.Time{}
	}
	if until, ok := m.busy[k]; ok && now.Before(until) {
		return false
	}
	m.busy[k] = now.Add(24 * time.Hour) // until done
	return true
}

// again has the leader tend the apps now, not at the next tick: a step of a move or a
// spread is done, and the next can follow.
func (m *appMoves) again() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// inHand reports whether k is being worked on now.
func (m *appMoves) inHand(k any) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	until, ok := m.busy[k]
	return ok && time.Now().Add(moveRetry).Before(until)
}

// done ends a move: a failed one may be tried again after moveRetry.
func (m *appMoves) done(k any, failed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if failed {
		m.busy[k] = time.Now().Add(moveRetry)
	} else {
		delete(m.busy, k)
	}
}

// tendApps runs, while this member leads under epoch, a pass over the placed apps every
// appsEvery and whenever a host goes down.
func (r *Ring0) tendApps(ctx context.Context, epoch int64) {
	t := time.NewTicker(appsEvery)
	defer t.Stop()
	var moves sync.WaitGroup
	defer moves.Wait()
	for {
		r.tendOnce(ctx, epoch, &moves)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.moves.kick:
		}
	}
}

// tendOnce moves the apps of hosts that are down, and, on every host that is up, keeps the
// recipes of the apps placed there, runs those re-placed there and destroys the copies of
// those placed elsewhere; spreads the apps' instances over the hosts; then tells each host
// where the apps it does not run are.
func (r *Ring0) tendOnce(ctx context.Context, epoch int64, moves *sync.WaitGroup) {
	state, err := r.hostStates(ctx)
	if err != nil {
		return
	}
	placed, err := r.store.PlacedApps(ctx)
	if err != nil {
		return
	}
	heads, err := r.store.RecipeHeads(ctx)
	if err != nil {
		return
	}
	replicas, err := r.store.Replicas(ctx)
	if err != nil {
		return
	}
	byApp := map[inventory.AppKey]inventory.PlacedApp{}
	for _, p := range placed {
		byApp[inventory.AppKey{Tenant: p.Tenant, App: p.App}] = p
		if state[p.Node] == "down" && r.moves.take(inventory.AppKey{Tenant: p.Tenant, App: p.App}, time.Now()) {
			moves.Go(func() { r.moveApp(ctx, epoch, p) })
		}
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		hosts   []api.AppsBackend
		running = map[enjin.NodeID]map[inventory.AppKey]apphost.Running{}
	)
	routers := map[enjin.NodeID]string{}
	for node, st := range state {
		if st != "up" {
			continue
		}
		claim, err := r.lastClaim(ctx, node) // read once: the app API and the router
		if err != nil {
			continue
		}
		a, ok := r.appsAPIIn(ctx, node, claim)
		if !ok {
			continue
		}
		hosts = append(hosts, a.on(node))
		if claim.Router != "" {
			routers[node] = claim.Router
		}
		wg.Go(func() {
			runs := r.tendHost(ctx, a.on(node), byApp, replicas, heads, moves)
			if runs != nil {
				mu.Lock()
				running[node] = runs
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	at := r.spread(ctx, epoch, placed, replicas, state, running, heads, moves)
	r.pushRoutes(ctx, hosts, routers, at)
	r.pushDomains(ctx, hosts)
}

// tendHost compares what host h runs with the placements and the recipes kept, and returns
// what it runs (nil if it did not say).
func (r *Ring0) tendHost(ctx context.Context, h api.AppsBackend, placed map[inventory.AppKey]inventory.PlacedApp, replicas map[inventory.AppKey][]enjin.NodeID,
	heads map[inventory.AppKey]inventory.AppRecipe, moves *sync.WaitGroup) map[inventory.AppKey]apphost.Running {
	var list struct {
		Apps []apphost.Running `json:"apps"`
	}
	if err := r.hostJSON(ctx, h, "GET", appapi.OpRunning.Path(), nil, &list); err != nil {
		r.log.Debug("a host's apps not read", "node", h.Node, "err", err)
		return nil
	}
	runs := map[inventory.AppKey]apphost.Running{}
	for _, a := range list.Apps {
		k := inventory.AppKey{Tenant: a.Tenant, App: a.App}
		runs[k] = a
		p, ok := placed[k]
		switch {
		case !ok && a.Share.Of > 1: // a replica's copy of an app destroyed while its host was away
			r.dropCopy(ctx, h, inventory.PlacedApp{Tenant: a.Tenant, App: a.App}, false)
		case !ok: // not placed: made before placements, or being destroyed
		case slices.Contains(replicas[k], h.Node): // a share of it (spread)
		case p.Node != h.Node && r.moves.inHand(spreadKey{k, h.Node}): // a dropped replica's, being destroyed
		case p.Node != h.Node:
			r.dropCopy(ctx, h, p, true)
		default:
			if p.MovedFrom != "" {
				r.settle(ctx, p)
			}
			hd, kept := heads[k]
			if kept && hd.Node == h.Node && hd.Release == a.Release && hd.Digest == a.Digest && maps.Equal(hd.Scale, a.Scale) {
				continue
			}
			have := ""
			if kept && hd.Digest == a.Digest {
				have = hd.Digest // the package is kept already: only the recipe changed
			} else if r.moves.big(k, a.Digest) {
				continue
			}
			err := r.keepRecipe(ctx, h, k, have)
			switch {
			case errors.Is(err, apphost.ErrTooLarge):
				r.moves.setBig(k, a.Digest)
				r.log.Warn("an app's package is too big to keep: it will not move if its host goes down", "tenant", k.Tenant,
					"app", k.App, "node", h.Node, "most", maxKept)
				r.event("app-not-kept", map[string]any{"tenant": k.Tenant, "app": k.App, "node": h.Node, "most_bytes": maxKept})
			case err != nil && ctx.Err() == nil:
				r.log.Warn("an app's recipe not kept", "tenant", k.Tenant, "app", k.App, "node", h.Node, "err", err)
			}
		}
	}
	for k, p := range placed {
		if _, run := runs[k]; p.Node == h.Node && p.MovedFrom != "" && !run && r.moves.take(k, time.Now()) {
			moves.Go(func() {
				err := r.runMoved(ctx, h, p)
				r.moves.done(k, err != nil)
			})
		}
	}
	return runs
}

// dropCopy destroys, on host h, its copy of app p: one re-placed on another host while h was
// down (retire: keeping its HOME aside there, for whatever the app wrote while cut off), or a
// replica's copy of an app destroyed meanwhile.
func (r *Ring0) dropCopy(ctx context.Context, h api.AppsBackend, p inventory.PlacedApp, retire bool) {
	var out struct {
		HomeKept string `json:"home_kept"`
	}
	q := ""
	if retire {
		q = "?retire=1"
	}
	err := r.hostJSON(ctx, h, "DELETE", appapi.OpDestroy.Path(string(p.Tenant), p.App)+q, nil, &out)
	if err != nil && !errors.Is(err, io.EOF) { // a destroy answers no body
		r.log.Warn("an app's stale copy not destroyed", "tenant", p.Tenant, "app", p.App, "node", h.Node, "err", err)
		return
	}
	r.log.Warn("an app's stale copy destroyed", "tenant", p.Tenant, "app", p.App, "node", h.Node,
		"runs_on", p.Node, "home_kept", out.HomeKept)
	r.event("app-copy-dropped", map[string]any{"tenant": p.Tenant, "app": p.App, "node": h.Node, "runs_on": p.Node, "home_kept": out.HomeKept})
}

// moveApp re-places app p off its host, which is down: to the host, up and running apps (one
// of its replicas, if any is up), whose signed bid wins — fewest of the tenant's apps, then
// most memory free —, under the leader's fencing epoch, and runs it there.
func (r *Ring0) moveApp(ctx context.Context, epoch int64, p inventory.PlacedApp) {
	k := inventory.AppKey{Tenant: p.Tenant, App: p.App}
	start := time.Now()
	err := func() error {
		if _, err := r.store.Recipe(ctx, p.Tenant, p.App); err != nil {
			return fmt.Errorf("no recipe kept: %w", err)
		}
		// Any host that is up and runs apps may take it — one not hosting the tenant yet
		// then does — so a tenant that lived on the lost host alone keeps its apps.
		up, err := r.upAppHosts(ctx, p.Node)
		if err != nil {
			return err
		}
		if len(up) == 0 {
			return fmt.Errorf("no other host that runs apps is up: %w", ErrNode)
		}
		// A replica that is up runs the app already: it takes it all, with no copy to make.
		replicas, err := r.store.Replicas(ctx)
		if err != nil {
			return err
		}
		if rs := slices.DeleteFunc(slices.Clone(up), func(h api.AppsBackend) bool { return !slices.Contains(replicas[k], h.Node) }); len(rs) > 0 {
			up = rs
		}
		w, err := r.placeBy(ctx, p.Tenant, p.App, up)
		if err != nil {
			return err
		}
		if err := r.store.MoveApp(ctx, epoch, p.Tenant, p.App, p.Node, w.backend.Node, w.signed); err != nil {
			return err
		}
		r.log.Warn("app re-placed off a host that is down", "tenant", p.Tenant, "app", p.App, "from", p.Node, "to", w.backend.Node)
		moved := p
		moved.Node, moved.MovedFrom = w.backend.Node, p.Node
		if err := r.runMoved(ctx, w.backend, moved); err != nil {
			r.log.Warn("a re-placed app not run yet; tried again", "tenant", p.Tenant, "app", p.App, "node", w.backend.Node, "err", err)
		}
		r.event("app-moved", map[string]any{"tenant": p.Tenant, "app": p.App, "from": p.Node, "to": w.backend.Node,
			"took_ms": time.Since(start).Milliseconds()})
		return nil
	}()
	if err != nil && ctx.Err() == nil {
		r.log.Warn("app on a host that is down not re-placed", "tenant", p.Tenant, "app", p.App, "node", p.Node, "err", err)
		r.event("app-not-moved", map[string]any{"tenant": p.Tenant, "app": p.App, "node": p.Node, "error": err.Error()})
	}
	r.moves.done(k, err != nil)
}

// upAppHosts are the app APIs of the ring 1 nodes that are up and run apps — hosting a
// tenant, or run by this member — but for except.
func (r *Ring0) upAppHosts(ctx context.Context, except enjin.NodeID) ([]api.AppsBackend, error) {
	state, err := r.hostStates(ctx)
	if err != nil {
		return nil, err
	}
	var out []api.AppsBackend
	for node, st := range state {
		if a, ok := r.appsAPIOf(ctx, node); ok && st == "up" && node != except {
			out = append(out, a.on(node))
		}
	}
	slices.SortFunc(out, func(a, b api.AppsBackend) int { return cmp.Compare(a.Node, b.Node) })
	return out, nil
}

// hostStates are the judged states of the ring 1 nodes apps run on or may move to: those
// hosting a tenant, and those this member runs.
func (r *Ring0) hostStates(ctx context.Context) (map[enjin.NodeID]string, error) {
	r.mu.Lock()
	own := slices.Collect(maps.Keys(r.appsAPIs))
	r.mu.Unlock()
	return r.store.AppHostStates(ctx, own)
}

// runMoved has host h run app p, re-placed there, from its kept recipe; an app h runs already
// counts as run.
func (r *Ring0) runMoved(ctx context.Context, h api.AppsBackend, p inventory.PlacedApp) error {
	body, err := r.importBody(ctx, inventory.AppKey{Tenant: p.Tenant, App: p.App})
	if err != nil {
		return err
	}
	defer body.Close()
	err = r.hostJSON(ctx, h, "POST", appapi.OpImport.Path(string(p.Tenant), p.App), body, nil)
	var he *hostError
	if err != nil && !(errors.As(err, &he) && he.status == http.StatusConflict) {
		return err
	}
	r.settle(ctx, p)
	return nil
}

// settle records that app p runs on the host it was re-placed on.
func (r *Ring0) settle(ctx context.Context, p inventory.PlacedApp) {
	if err := r.store.SettleMove(ctx, p.Tenant, p.App, p.Node); err != nil {
		r.log.Warn("a re-placed app's move not settled", "tenant", p.Tenant, "app", p.App, "err", err)
		return
	}
	r.log.Info("a re-placed app runs on its new host", "tenant", p.Tenant, "app", p.App, "node", p.Node, "from", p.MovedFrom)
}
