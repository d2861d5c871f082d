package ring1_test

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/rings/ring1"
	"enjin/test/harness"
)

// Heartbeats arrive signed and plausible; ring 0's acks and refusals are counted.
func TestHeartbeats(t *testing.T) {
	c := harness.StartBroker(t)
	r0 := listen(t, c)
	n := start(t, node(t, c, r0, "n1"))

	harness.Eventually(t, 10*time.Second, func() bool {
		k, _ := r0.seen()
		return k >= 3 && n.Stats().Acked >= 3
	}, "3 acknowledged heartbeats")
	_, obs := r0.seen()
	if obs.Node != "n1" || obs.Ring != enjin.Ring1 || obs.State != enjin.StateUp {
		t.Errorf("got node %q ring %v state %q, want n1 ring1 up", obs.Node, obs.Ring, obs.State)
	}
	if obs.MemBytes == 0 || obs.UptimeSec < 0 || obs.CPU < 0 || obs.Load1 < 0 {
		t.Errorf("implausible figures: mem %d uptime %v cpu %v load1 %v", obs.MemBytes, obs.UptimeSec, obs.CPU, obs.Load1)
	}
	if d := time.Since(obs.Time); d < 0 || d > 10*time.Second {
		t.Errorf("heartbeat time %v is %v from now", obs.Time, d)
	}
	if s := n.Stats(); s.LastAckedSeq == 0 || s.Refused != 0 {
		t.Errorf("stats %+v: want a last acked seq and no refusals", s)
	}

	r0.refuse.Store(true)
	harness.Eventually(t, 10*time.Second, func() bool { return n.Stats().Refused >= 2 },
		"2 refused heartbeats")
	if err := n.stop(t); err != nil {
		t.Fatalf("Run after cancel: got %v, want nil", err)
	}
}

// With nobody acknowledging, heartbeats are counted as unacknowledged and keep coming.
func TestUnackedHeartbeatsCarryOn(t *testing.T) {
	c := harness.StartBroker(t)
	cr, att := c.Ring1Node(t, "n1")
	n := start(t, ring1.Config{Node: "n1", NATSURL: c.URL, Creds: cr, Attestation: att})
	harness.Eventually(t, 10*time.Second, func() bool { return n.Stats().Unacked >= 3 }, "3 unacknowledged heartbeats")
	if s := n.Stats(); s.Acked != 0 || s.Refused != 0 || s.LastAckedSeq != 0 {
		t.Errorf("stats %+v: want only unacknowledged heartbeats", s)
	}
	if err := n.stop(t); err != nil {
		t.Fatalf("Run after cancel: got %v, want nil", err)
	}
}

// Ring 0's commands reach the node and are answered; drain is idempotent and shows in the
// next heartbeats.
func TestCommands(t *testing.T) {
	c := harness.StartBroker(t)
	r0 := listen(t, c)
	n := start(t, node(t, c, r0, "n1"))
	// The first heartbeat comes after the command subscription is live.
	harness.Eventually(t, 10*time.Second, func() bool { k, _ := r0.seen(); return k > 0 }, "first heartbeat")

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	subj := func(verb string) string { return bus.R0ToRing1Cmd("n1", verb) }

	ping, err := bus.Request[struct{}, ring1.PingReply](ctx, r0.nc, subj(bus.VerbPing), struct{}{})
	if err != nil || ping.Node != "n1" || ping.Time.IsZero() {
		t.Errorf("ping: got %+v, %v; want node n1 with a time", ping, err)
	}
	desc, err := bus.Request[struct{}, ring1.DescribeReply](ctx, r0.nc, subj(bus.VerbDescribe), struct{}{})
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	if desc.Node != "n1" || desc.Ring != enjin.Ring1 || desc.State != enjin.StateUp || desc.PID == 0 ||
		desc.Started.IsZero() || desc.Heartbeat != beat.String() {
		t.Errorf("describe: got %+v", desc)
	}
	if now := n.Stats(); desc.Stats.Acked == 0 || desc.Stats.Acked > now.Acked {
		t.Errorf("describe: stats %+v, want some acks and no more than %d", desc.Stats, now.Acked)
	}
	for i := range 2 {
		d, err := bus.Request[struct{}, ring1.DrainReply](ctx, r0.nc, subj(bus.VerbDrain), struct{}{})
		if err != nil || d.Node != "n1" || d.State != enjin.StateDraining {
			t.Errorf("drain %d: got %+v, %v; want n1 draining", i+1, d, err)
		}
	}
	harness.Eventually(t, 10*time.Second, func() bool {
		_, obs := r0.seen()
		return obs.State == enjin.StateDraining
	}, "a heartbeat saying draining")
	desc, err = bus.Request[struct{}, ring1.DescribeReply](ctx, r0.nc, subj(bus.VerbDescribe), struct{}{})
	if err != nil || desc.State != enjin.StateDraining {
		t.Errorf("describe after drain: got state %q, %v; want draining", desc.State, err)
	}

	_, err = bus.Request[struct{}, json.RawMessage](ctx, r0.nc, subj("reboot"), struct{}{})
	if re, ok := errors.AsType[*bus.RemoteError](err); !ok || !strings.Contains(re.Msg, `unknown command "reboot"`) {
		t.Errorf("unknown verb: got %v, want a remote error naming the command", err)
	}
	// Drain is for the rest of the node's life: later heartbeats still say so.
	k0, _ := r0.seen()
	harness.Eventually(t, 10*time.Second, func() bool { k, _ := r0.seen(); return k >= k0+2 }, "two more heartbeats")
	if _, obs := r0.seen(); obs.State != enjin.StateDraining {
		t.Errorf("later heartbeat: got state %q, want draining", obs.State)
	}
}

// Revoking the node's credential ends Run promptly with a terminal error.
func TestRevocationEndsRun(t *testing.T) {
	c := harness.StartBroker(t)
	r0 := listen(t, c)
	cfg := node(t, c, r0, "n1")
	n := start(t, cfg)
	harness.Eventually(t, 10*time.Second, func() bool { return n.Stats().Acked > 0 }, "an acknowledged heartbeat")

	t0 := time.Now()
	if err := c.Broker.Revoke(t.Context(), keys.RING1, cfg.Creds.PublicKey); err != nil {
		t.Fatal(err)
	}
	err := n.wait(t, 5*time.Second)
	if !bus.Terminal(err) || !errors.Is(err, nats.ErrAuthRevoked) {
		t.Fatalf("Run after revocation: got %v, want an error wrapping nats.ErrAuthRevoked", err)
	}
	t.Logf("Run returned %v after %v", err, time.Since(t0))
}

// Cancelling the context ends Run with nil and leaves no goroutine behind.
func TestCancelStopsEverything(t *testing.T) {
	c := harness.StartBroker(t)
	r0 := listen(t, c)
	cfg := node(t, c, r0, "n1")
	before := runtime.NumGoroutine()

	n := start(t, cfg)
	harness.Eventually(t, 10*time.Second, func() bool { return n.Stats().Acked > 0 }, "an acknowledged heartbeat")
	if err := n.stop(t); err != nil {
		t.Fatalf("Run after cancel: got %v, want nil", err)
	}
	harness.Eventually(t, 10*time.Second, func() bool { return runtime.NumGoroutine() <= before },
		"goroutines back to %d (now %d)", before, runtime.NumGoroutine())
}

func TestNewRefusesBadConfig(t *testing.T) {
	c := harness.StartBroker(t)
	cr, att := c.Ring1Node(t, "n1")
	noSeed := *cr
	noSeed.Seed = nil
	good := ring1.Config{Node: "n1", NATSURL: c.URL, Creds: cr, Attestation: att}
	if _, err := ring1.New(good); err != nil {
		t.Fatalf("New(good config): %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*ring1.Config)
		want string
	}{
		{"dotted node id", func(c *ring1.Config) { c.Node = "a.b" }, "node id"},
		{"empty node id", func(c *ring1.Config) { c.Node = "" }, "node id"},
		{"no creds", func(c *ring1.Config) { c.Creds = nil }, "no credential"},
		{"creds without seed", func(c *ring1.Config) { c.Creds = &noSeed }, "seed"},
		{"creds of another node", func(c *ring1.Config) { c.Node = "n2" }, `not "n2"`},
		{"no attestation", func(c *ring1.Config) { c.Attestation = nil }, "no attestation key"},
		{"no url", func(c *ring1.Config) { c.NATSURL = "" }, "no NATS URL"},
		{"negative heartbeat", func(c *ring1.Config) { c.Heartbeat = -time.Second }, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			n, err := ring1.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, %v; want an error containing %q", n, err, tc.want)
			}
		})
	}
	// Every problem is reported at once.
	_, err := ring1.New(ring1.Config{Node: "a.b"})
	for _, want := range []string{"node id", "no NATS URL", "no credential", "no attestation key"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(empty config): got %v, want it to mention %q", err, want)
		}
	}
}

// While ring 0 is away, observations wait in the backlog; when it is back they all arrive,
// oldest first, signed afresh (so within the verifier's window), none lost.
func TestBacklogIsDeliveredAfterAnOutage(t *testing.T) {
	c := harness.StartBroker(t)
	r0 := listen(t, c)
	n := start(t, node(t, c, r0, "n1"))
	harness.Eventually(t, 10*time.Second, func() bool { k, _ := r0.seen(); return k > 0 }, "first heartbeat")
	r0.away.Store(true)
	before, _ := r0.seen()
	harness.Eventually(t, 10*time.Second, func() bool { return n.Stats().Backlog >= 10 }, "10 observations waiting")
	r0.away.Store(false)
	harness.Eventually(t, 10*time.Second, func() bool { return n.Stats().Backlog == 0 }, "the backlog delivered")
	obs := r0.all()
	if len(obs) < before+10 {
		t.Fatalf("%d observations after the outage, want at least %d", len(obs), before+10)
	}
	for i := 1; i < len(obs); i++ {
		gap := obs[i].Time.Sub(obs[i-1].Time)
		if gap <= 0 || gap > 8*beat {
			t.Fatalf("observation %d made %v after the one before: out of order or one lost", i, gap)
		}
	}
	if s := n.Stats(); s.Dropped != 0 || s.Unacked == 0 {
		t.Fatalf("stats %+v: want unacknowledged sends during the outage and nothing dropped", s)
	}
	t.Logf("%d observations made during the outage, all delivered in order", len(obs)-before)
}

// An overloaded ring 0 defers heartbeats: the node keeps them (none refused or dropped),
// waits as asked (jittered) instead of sending at every beat, and delivers them all, in
// order, once ring 0 takes them again.
func TestDeferredHeartbeatsAreKept(t *testing.T) {
	c := harness.StartBroker(t)
	r0 := listen(t, c)
	n := start(t, node(t, c, r0, "n1"))
	harness.Eventually(t, 10*time.Second, func() bool { k, _ := r0.seen(); return k > 0 }, "first heartbeat")
	before, _ := r0.seen()
	r0.overloaded.Store(true)
	t0 := time.Now()
	harness.Eventually(t, 10*time.Second, func() bool { return n.Stats().Backlog >= 20 }, "20 observations waiting")
	window := time.Since(t0)
	r0.overloaded.Store(false)
	deferrals := r0.deferrals.Load()
	harness.Eventually(t, 10*time.Second, func() bool { return n.Stats().Backlog == 0 }, "the backlog delivered")
	obs := r0.all()
	if len(obs) < before+20 {
		t.Fatalf("%d observations after the overload, want at least %d", len(obs), before+20)
	}
	for i := 1; i < len(obs); i++ {
		if gap := obs[i].Time.Sub(obs[i-1].Time); gap <= 0 || gap > 8*beat {
			t.Fatalf("observation %d made %v after the one before: out of order or one lost", i, gap)
		}
	}
	// Obeying: at most one send per half the wait asked (the jitter's least), not one a beat.
	if most := int64(window/(deferFor/2)) + 2; deferrals > most {
		t.Fatalf("%d sends deferred in %v: the node did not wait (at most %d if it had)", deferrals, window, most)
	}
	if s := n.Stats(); s.Refused != 0 || s.Dropped != 0 || s.Deferred == 0 {
		t.Fatalf("stats %+v: want deferrals, nothing refused or dropped", s)
	}
	t.Logf("overloaded for %v: %d sends deferred (a beat is %v, the wait asked %v), then all %d observations delivered in order",
		window.Round(time.Millisecond), deferrals, beat, deferFor, len(obs)-before)
}
