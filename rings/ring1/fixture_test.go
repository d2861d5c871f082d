package ring1_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/rings/ring1"
	"enjin/test/harness"
)

// The two sides of every test here: ring 0 receiving heartbeats, and a node under Run.

const beat = 50 * time.Millisecond

// deferFor is how long an overloaded ring 0 asks nodes to wait: four heartbeats.
const deferFor = 4 * beat

// ring0 is the receiving side of heartbeats: it verifies each one, records it and acks or
// refuses it.
type ring0 struct {
	nc     *nats.Conn // RING0: commands
	ingest *nats.Conn // RING1, as ring 0's ingest user: heartbeats
	v      *bus.Verifier
	refuse atomic.Bool
	away   atomic.Bool // ring 0 is gone: nothing is received or answered
	// overloaded: ring 0 defers every heartbeat (send again after deferFor), counting them
	overloaded atomic.Bool
	deferrals  atomic.Int64

	mu       sync.Mutex
	obs      []enjin.Observation
	rejected []error
}

func listen(t *testing.T, c *harness.Cloud) *ring0 {
	t.Helper()
	r := &ring0{nc: c.Connect(t, c.Ring0(t)), ingest: c.Connect(t, c.Ring0Ingest(t)), v: bus.NewVerifier(0)}
	_, err := r.ingest.Subscribe(bus.Ring1ObsAll, func(m *nats.Msg) {
		if r.away.Load() {
			return
		}
		if r.overloaded.Load() { // before verifying, as ring 0's full queue does
			r.deferrals.Add(1)
			bus.Defer(m, errors.New("overloaded"), deferFor)
			return
		}
		node, ok := bus.Ring1ObsNode(m.Subject)
		var obs enjin.Observation
		_, err := r.v.Verify(node, m.Header, m.Data, time.Now())
		if err == nil && !ok {
			err = fmt.Errorf("subject %q names no node", m.Subject)
		}
		if err == nil {
			err = json.Unmarshal(m.Data, &obs)
		}
		if err == nil && obs.Node != node {
			err = fmt.Errorf("observation from %q arrived on %q", obs.Node, m.Subject)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.rejected = append(r.rejected, err)
			bus.Refuse(m, err)
			return
		}
		r.obs = append(r.obs, obs)
		if r.refuse.Load() {
			bus.Refuse(m, errors.New("store unavailable"))
			return
		}
		bus.Ack(m)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ingest.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, err := range r.rejected {
			t.Errorf("ring 0 rejected a heartbeat: %v", err)
		}
	})
	return r
}

func (r *ring0) register(t *testing.T, n enjin.NodeID, att *keys.Attestation) {
	t.Helper()
	if err := r.v.Register(n, att.Public(), 0); err != nil {
		t.Fatal(err)
	}
}

// all returns every heartbeat received so far.
func (r *ring0) all() []enjin.Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]enjin.Observation(nil), r.obs...)
}

// seen returns how many heartbeats arrived and the latest one.
func (r *ring0) seen() (int, enjin.Observation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.obs) == 0 {
		return 0, enjin.Observation{}
	}
	return len(r.obs), r.obs[len(r.obs)-1]
}

// running is a node whose Run is under way in another goroutine.
type running struct {
	*ring1.Node
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned err
	err    error
}

// start runs a node with cfg until the test ends (or stop is called).
func start(t *testing.T, cfg ring1.Config) *running {
	t.Helper()
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = beat
	}
	cfg.Logger = harness.Logger(t)
	n, err := ring1.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{Node: n, cancel: cancel, done: make(chan struct{})}
	go func() { // ends when Run returns: ctx cancelled or the credential refused
		defer close(r.done)
		r.err = n.Run(ctx)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// wait returns Run's result, failing the test if Run has not returned within d.
func (r *running) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(d):
		t.Fatalf("Run still running after %v", d)
		return nil
	}
}

// stop cancels Run and returns its result.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t, 10*time.Second)
}

func node(t *testing.T, c *harness.Cloud, r0 *ring0, id enjin.NodeID) ring1.Config {
	cr, att := c.Ring1Node(t, id)
	r0.register(t, id, att)
	return ring1.Config{Node: id, NATSURL: c.URL, Creds: cr, Attestation: att}
}
