package ring0

import (
	"context"
	"errors"
	"sync"
	"time"

	"enjin"
	"enjin/services/inventory"
)

// Liveness thresholds, in heartbeat periods of silence: suspect, then down.
const (
	suspectAfter = 3
	downAfter    = 6
	// massQuorum is the smallest fleet for which "most nodes went quiet at once" is taken
	// as ring 0's own trouble rather than the nodes'.
	massQuorum = 3
)

// judge decides node liveness from the time ring 0 last committed an observation of each
// node. It never declares a node down because of ring 0's own trouble: after ring 0 starts,
// every node counts as seen at the start (a grace of six heartbeats), and when more than half
// of the live nodes are quiet at once it holds every state instead of declaring a mass death.
type judge struct {
	hb time.Duration

	mu    sync.Mutex
	nodes map[enjin.NodeID]*life
	mass  bool // holding because most nodes are quiet
}

type life struct {
	last  time.Time
	state string
}

func newJudge(hb time.Duration) *judge {
	return &judge{hb: hb, nodes: map[enjin.NodeID]*life{}}
}

// load seeds the judge at ring 0's start: nodes not down count as seen now.
func (j *judge) load(keys []inventory.NodeKey, now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, k := range keys {
		switch k.State {
		case "up", "suspect":
			j.nodes[k.Node] = &life{last: now, state: k.State}
		case "down":
			j.nodes[k.Node] = &life{state: "down"}
		}
	}
}

// seen records a committed observation of node.
func (j *judge) seen(node enjin.NodeID, at time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	l := j.nodes[node]
	if l == nil {
		l = &life{}
		j.nodes[node] = l
	}
	if l.state == inventory.StateDecommissioned {
		return
	}
	if at.After(l.last) {
		l.last = at
	}
	l.state = "up" // the store set it with the commit
}

// heard notes that a node sent something ring 0 could not take yet (it deferred it): the
// node is alive, though its state is what it was, and counts as heard from until until —
// when it was told it may come back.
func (j *judge) heard(node enjin.NodeID, until time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if l := j.nodes[node]; l != nil && (l.state == "up" || l.state == "suspect") && until.After(l.last) {
		l.last = until
	}
}

// verdict is what one tick concluded.
type verdict struct {
	Suspect, Down []enjin.NodeID
	Mass          bool // most nodes are quiet: states held
	MassStarted   bool // … and this tick is the first to see it
}

// tick judges every live node at now.
func (j *judge) tick(now time.Time) verdict {
	j.mu.Lock()
	defer j.mu.Unlock()
	live, quiet := 0, 0
	for _, l := range j.nodes {
		if l.state == "up" || l.state == "suspect" {
			live++
			if now.Sub(l.last) >= suspectAfter*j.hb {
				quiet++
			}
		}
	}
	var v verdict
	if live >= massQuorum && 2*quiet > live {
		v.Mass, v.MassStarted = true, !j.mass
		j.mass = true
		return v
	}
	j.mass = false
	for id, l := range j.nodes {
		if l.state != "up" && l.state != "suspect" {
			continue
		}
		switch silent := now.Sub(l.last); {
		case silent >= downAfter*j.hb:
			l.state = "down"
			v.Down = append(v.Down, id)
		case silent >= suspectAfter*j.hb && l.state == "up":
			l.state = "suspect"
			v.Suspect = append(v.Suspect, id)
		}
	}
	return v
}

// liveness judges nodes five times a heartbeat and records what it concludes, under the
// leader lease's epoch, until ctx ends (the lease was lost, or ring 0 stops).
func (r *Ring0) liveness(ctx context.Context, epoch int64) {
	t := time.NewTicker(r.cfg.Heartbeat / 5)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			v := r.judge.tick(now)
			if v.MassStarted {
				r.log.Warn("most nodes went quiet at once; holding their states (grace)")
				r.event("mass-silence", map[string]any{"at": now})
			}
			for state, ids := range map[string][]enjin.NodeID{"suspect": v.Suspect, "down": v.Down} {
				if len(ids) == 0 {
					continue
				}
				if _, err := r.store.SetStates(ctx, epoch, ids, state); err != nil {
					if ctx.Err() == nil {
						r.log.Error("record liveness", "state", state, "err", err)
					}
					continue // not recorded: nothing follows from it
				}
				if state == "down" {
					r.promoteReplicas(ctx, epoch, ids)
					r.moves.again() // their apps go elsewhere
				}
				if len(ids) > 10 {
					r.log.Warn("nodes "+state, "n", len(ids), "first", ids[0])
				}
				for _, id := range ids {
					if len(ids) <= 10 {
						r.log.Warn("node "+state, "node", id)
					}
					r.event("node-"+state, map[string]any{"node": id, "at": now})
				}
			}
		}
	}
}

// promoteReplicas promotes a replica of every tier whose primary is among down, under the
// leader's epoch: a deposed leader's promotion is refused like its verdicts.
func (r *Ring0) promoteReplicas(ctx context.Context, epoch int64, down []enjin.NodeID) {
	tiers, err := r.store.PrimaryTiers(ctx, down)
	if err != nil {
		r.log.Error("tiers of down nodes", "err", err)
		return
	}
	for node, ts := range tiers {
		for _, tier := range ts {
			p, err := r.store.PromoteFenced(ctx, epoch, tier, node)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, inventory.ErrConflict) { // conflict: promoted already
					r.log.Error("promote a replica", "tier", tier, "failed", node, "err", err)
					r.event("tier-unpromoted", map[string]any{"tier": tier, "failed": node, "error": err.Error()})
				}
				continue
			}
			r.log.Warn("tier's primary down: replica promoted", "tier", tier, "failed", node, "primary", p.Primary, "epoch", p.Epoch)
			r.event("tier-promoted", p)
		}
	}
}

// maintenance keeps observation partitions ahead of time, applies retention (while leading)
// and sweeps image files no record names, hourly (the sweep also at once).
func (r *Ring0) maintenance(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	r.sweepImages(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := r.store.EnsurePartitions(ctx); err != nil {
				r.log.Error("partitions", "err", err)
			}
			if _, leading := r.Leadership(); leading == 0 {
				r.sweepImages(ctx)
				continue // retention is the leader's: members dropping partitions at once race
			}
			if dropped, err := r.store.ApplyRetention(ctx, now); err != nil {
				r.log.Error("retention", "err", err)
			} else if len(dropped) > 0 {
				r.log.Info("retention dropped partitions", "partitions", dropped)
			}
			r.sweepImages(ctx)
		}
	}
}
