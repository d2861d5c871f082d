package ring0

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"enjin"
	"enjin/services/api"
	"enjin/services/appapi"
	"enjin/services/apphost"
	"enjin/services/inventory"
)

// Spreading an app's instances over hosts. An app lives on one host, its home (where its
// deploys, scales and rollbacks go); when it runs more than one instance of a process type
// and other hosts that run apps are up, the leader gives it replicas — hosts won by signed
// bids, as many as its largest count of one type allows, up to all the hosts — each running a
// copy of the home's live release from the kept recipe and a share of the instances (index
// modulo the hosts: web.0 and web.2 at home, web.1 on the replica), so that no two instances
// of a type share a host while there is a host without one. A replica follows its home: a new
// release there is made on the replica too, a scale is passed on, within a pass or two. The
// home gives up its other instances only once every replica runs its own; a replica on a host
// that stopped heartbeating (suspect, or down) is dropped at once, and the others take its
// instances. An app that says
// "spread": false in its enjin.json (its instances share what they write in HOME, which is
// one per host), or joins tenant networks (spreading one is not tested yet), stays on its
// home.

// spreadKey names one host's part in spreading an app, for appMoves' bookkeeping ("" for the
// auction of a new replica).
type spreadKey struct {
	app  inventory.AppKey
	node enjin.NodeID
}

// spread brings every placed app's replicas (as the pass began) and shares in line with the
// hosts that are up (state: as judged; running: by up host, what it said it runs) and returns
// where each app runs now: its home and the replicas that run it.
func (r *Ring0) spread(ctx context.Context, epoch int64, placed []inventory.PlacedApp, replicas map[inventory.AppKey][]enjin.NodeID, state map[enjin.NodeID]string,
	running map[enjin.NodeID]map[inventory.AppKey]apphost.Running, heads map[inventory.AppKey]inventory.AppRecipe, moves *sync.WaitGroup) map[inventory.AppKey][]enjin.NodeID {
	at := map[inventory.AppKey][]enjin.NodeID{}
	for _, p := range placed {
		k := inventory.AppKey{Tenant: p.Tenant, App: p.App}
		at[k] = []enjin.NodeID{p.Node}
		for _, n := range replicas[k] { // while its home is suspect or down, they serve it
			if _, runs := running[n][k]; runs {
				at[k] = append(at[k], n)
			}
		}
		home, ok := running[p.Node][k]
		if !ok || p.MovedFrom != "" {
			continue // its home is down, or has yet to run it
		}
		var live []enjin.NodeID
		for _, n := range replicas[k] {
			if st := state[n]; st == "up" {
				live = append(live, n)
			} else { // suspect or down: the others take its instances now
				r.dropReplica(ctx, epoch, k, n, "its host is "+cmp.Or(st, "gone")) // its copy is retired when it is back
			}
		}
		most := 0
		for _, n := range home.Instances {
			most = max(most, n)
		}
		hostsUp := len(running) // the up hosts that said what they run, and the replicas that did not this time
		for _, n := range live {
			if running[n] == nil {
				hostsUp++
			}
		}
		want := min(most, hostsUp) - 1 // every up host but the home may take a share
		if home.OneHost {
			want = 0
		}
		for len(live) > max(want, 0) {
			if n := live[len(live)-1]; r.dropReplica(ctx, epoch, k, n, "the app runs fewer instances") {
				r.destroyCopy(ctx, k, n, moves)
			}
			live = live[:len(live)-1]
		}
		// A replica runs the app from its recipe, kept of the home's live release (none is
		// kept of a package too big to keep: such an app stays at home).
		fresh := heads[k].Node == p.Node && heads[k].Release == home.Release && heads[k].Digest == home.Digest
		if len(live) < want && fresh {
			r.addReplica(ctx, epoch, p, running, live, moves)
		}
		of := 1 + len(live)
		synced := true
		for i, n := range live {
			run, has := running[n][k]
			if running[n] == nil || !r.tendReplica(ctx, k, n, run, has, home, shareOf(i+1, of), fresh, moves) {
				synced = false // (its list was not read this pass: nothing is known of it)
			}
		}
		// The home gives its instances up once the replicas run theirs; it takes them back
		// at once when there are fewer hosts.
		if hs := shareOf(0, of); home.Share != hs && (synced || of < max(home.Share.Of, 1)) {
			r.setShare(ctx, spreadKey{k, p.Node}, nil, hs, moves)
		}
	}
	return at
}

// shareOf is slot's share of an app spread over of hosts (none, when it runs on one).
func shareOf(slot, of int) apphost.Share {
	if of <= 1 {
		return apphost.Share{}
	}
	return apphost.Share{Slot: slot, Of: of}
}

// tendReplica has replica host n run app k as its home does, under share s: imported from
// the kept recipe (if it is fresh: of the home's live release), following the home's new
// release, or with the home's scale and its share. It reports whether n runs it so already.
func (r *Ring0) tendReplica(ctx context.Context, k inventory.AppKey, n enjin.NodeID, run apphost.Running, has bool, home apphost.Running,
	s apphost.Share, fresh bool, moves *sync.WaitGroup) bool {
	key := spreadKey{k, n}
	switch {
	case !has || run.From != home.Release:
		if !fresh || !r.moves.take(key, time.Now()) {
			return false
		}
		h, ok := r.appsAPIOf(ctx, n)
		if !ok {
			r.moves.done(key, true)
			return false
		}
		moves.Go(func() {
			err := r.copyTo(ctx, h.on(n), k, s, has)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("an app's replica not brought up to date", "tenant", k.Tenant, "app", k.App, "node", n, "err", err)
			}
			r.moves.done(key, err != nil)
			if err == nil {
				r.moves.again() // the home may give its other instances up now
			}
		})
		return false
	case run.Share != s || !maps.Equal(run.Scale, home.Scale):
		r.setShare(ctx, key, home.Scale, s, moves)
		return false
	}
	return true
}

// copyTo runs app k on host h from its kept recipe, share s of its instances: imported, or
// (has) as the copy's next release.
func (r *Ring0) copyTo(ctx context.Context, h api.AppsBackend, k inventory.AppKey, s apphost.Share, has bool) error {
	body, err := r.importBody(ctx, k)
	if err != nil {
		return err
	}
	defer body.Close()
	q := fmt.Sprintf("?slot=%d&of=%d", s.Slot, s.Of)
	if has {
		q = "?follow=1"
	}
	return r.hostJSON(ctx, h, "POST", appapi.OpImport.Path(string(k.Tenant), k.App)+q, body, nil)
}

// setShare has host key.node run its share s of app key.app (with scale, for a replica).
func (r *Ring0) setShare(ctx context.Context, key spreadKey, scale map[string]int, s apphost.Share, moves *sync.WaitGroup) {
	if !r.moves.take(key, time.Now()) {
		return
	}
	h, ok := r.appsAPIOf(ctx, key.node)
	if !ok {
		r.moves.done(key, true)
		return
	}
	b, _ := json.Marshal(struct {
		Scale map[string]int `json:"scale,omitempty"`
		apphost.Share
	}{scale, s})
	moves.Go(func() {
		err := r.hostJSON(ctx, h.on(key.node), "PUT", appapi.OpShare.Path(string(key.app.Tenant), key.app.App), bytes.NewReader(b), nil)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("an app's share on a host not set", "tenant", key.app.Tenant, "app", key.app.App, "node", key.node, "err", err)
		}
		r.moves.done(key, err != nil)
	})
}

// addReplica offers a share of app p to the up hosts that run apps and none of it yet (live
// are its replicas), and makes the winner a replica, hosting the tenant if it did not.
func (r *Ring0) addReplica(ctx context.Context, epoch int64, p inventory.PlacedApp, running map[enjin.NodeID]map[inventory.AppKey]apphost.Running,
	live []enjin.NodeID, moves *sync.WaitGroup) {
	k := inventory.AppKey{Tenant: p.Tenant, App: p.App}
	var others []api.AppsBackend
	for n := range running {
		if _, runs := running[n][k]; n == p.Node || runs || slices.Contains(live, n) {
			continue // its home, a replica, or a copy on its way out
		}
		if a, ok := r.appsAPIOf(ctx, n); ok {
			others = append(others, a.on(n))
		}
	}
	key := spreadKey{k, ""}
	if len(others) == 0 || !r.moves.take(key, time.Now()) {
		return
	}
	moves.Go(func() {
		err := func() error {
			w, err := r.placeBy(ctx, k.Tenant, k.App, others)
			if err != nil {
				return err
			}
			if err := r.store.AddReplica(ctx, epoch, k.Tenant, k.App, w.backend.Node, w.signed); err != nil {
				return err
			}
			r.log.Info("an app's instances spread to another host", "tenant", k.Tenant, "app", k.App, "home", p.Node, "replica", w.backend.Node)
			r.event("app-spread", map[string]any{"tenant": k.Tenant, "app": k.App, "home": p.Node, "replica": w.backend.Node})
			r.moves.again() // the new replica runs the app next
			return nil
		}()
		if err != nil && ctx.Err() == nil {
			r.log.Warn("an app's instances not spread to another host", "tenant", k.Tenant, "app", k.App, "err", err)
		}
		r.moves.done(key, err != nil)
	})
}

// dropReplica ends node's share of app k, and reports whether it did: the others take its
// instances. Its copy there is retired (HOME kept aside) when the host is next seen running
// it (tendHost), unless destroyCopy takes it first.
func (r *Ring0) dropReplica(ctx context.Context, epoch int64, k inventory.AppKey, node enjin.NodeID, why string) bool {
	if err := r.store.DropReplica(ctx, epoch, k.Tenant, k.App, node); err != nil {
		r.log.Warn("an app's replica not dropped", "tenant", k.Tenant, "app", k.App, "node", node, "err", err)
		return false
	}
	r.log.Info("an app's replica dropped", "tenant", k.Tenant, "app", k.App, "node", node, "why", why)
	r.event("app-replica-dropped", map[string]any{"tenant": k.Tenant, "app": k.App, "node": node, "why": why})
	return true
}

// destroyCopy destroys, HOME and all, the copy of app k on node, a replica dropped while up
// because the app runs fewer instances: its HOME held only what a share of the instances
// wrote, and keeping one aside at every scale down would fill the host.
func (r *Ring0) destroyCopy(ctx context.Context, k inventory.AppKey, node enjin.NodeID, moves *sync.WaitGroup) {
	key := spreadKey{k, node}
	h, ok := r.appsAPIOf(ctx, node)
	if !ok || !r.moves.take(key, time.Now()) {
		return
	}
	moves.Go(func() {
		r.dropCopy(ctx, h.on(node), inventory.PlacedApp{Tenant: k.Tenant, App: k.App}, false)
		r.moves.done(key, false)
	})
}
