package ring0

import (
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
