package test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/services/inventory"
	"enjin/test/harness"
)

// TestAcknowledgedMeansDurable has ring 1 nodes publish while ring 0 is killed with SIGKILL
// again and again and restarted. Every observation a node saw acknowledged must be in
// PostgreSQL afterwards, once.
func TestAcknowledgedMeansDurable(t *testing.T) {
	r := newRing0(t, time.Second)
	const nodes, kills = 4, 10
	var (
		mu    sync.Mutex
		acked = map[enjin.NodeID][]uint64{}
		total atomic.Int64
	)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for i := range nodes {
		id := enjin.NodeID("dur-" + string(rune('a'+i)))
		_, nc, s := r.joinOnBus(id, nats.ReconnectWait(20*time.Millisecond))
		wg.Go(func() { // ends with ctx
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				sl, err := bus.SendObservation(rctx, nc, s, bus.Ring1Obs(id), enjin.Observation{Node: id, Ring: enjin.Ring1, State: enjin.StateUp, Time: time.Now()})
				cancel()
				if err == nil {
					mu.Lock()
					acked[id] = append(acked[id], sl.Seq)
					mu.Unlock()
					total.Add(1)
				}
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		})
	}
	for k := range kills {
		before := total.Load()
		harness.Eventually(t, 30*time.Second, func() bool { return total.Load() >= before+50 }, "acks before kill %d", k)
		r.restart()
	}
	last := total.Load()
	harness.Eventually(t, 30*time.Second, func() bool { return total.Load() >= last+50 }, "acks after the last restart")
	stop()
	wg.Wait()

	store, err := inventory.Open(t.Context(), r.dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stored := map[enjin.NodeID]map[uint64]int{}
	var after enjin.NodeID
	var seq uint64
	rows := 0
	for {
		page, err := store.ObservationsAfter(t.Context(), after, seq, 5000)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page {
			if stored[o.Node] == nil {
				stored[o.Node] = map[uint64]int{}
			}
			stored[o.Node][o.Seq]++
			rows++
			after, seq = o.Node, o.Seq
		}
		if len(page) < 5000 {
			break
		}
	}
	missing, dups := 0, 0
	for id, seqs := range acked {
		for _, s := range seqs {
			if stored[id][s] == 0 {
				missing++
			}
		}
	}
	for _, m := range stored {
		for _, n := range m {
			if n > 1 {
				dups++
			}
		}
	}
	t.Logf("%d ring 0 kills; %d observations acknowledged, %d rows stored; %d acknowledged but missing, %d duplicated",
		kills, total.Load(), rows, missing, dups)
	if missing != 0 || dups != 0 {
		t.Fatalf("%d acknowledged observations missing, %d duplicated", missing, dups)
	}
}

// A node whose acknowledgement was lost sends the same observation again, byte for byte: ring
// 0 acknowledges the copy (once the first is committed) instead of telling the node "replay",
// and stores it once — after a restart of ring 0 too. Any other observation at or below the
// node's mark is still refused.
func TestLatestSentAgainIsAcknowledged(t *testing.T) {
	r := newRing0(t, time.Second)
	const id = enjin.NodeID("again-a")
	_, nc, s := r.joinOnBus(id)
	send := func(m *nats.Msg) string {
		t.Helper()
		resp, err := nc.RequestMsg(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if e := resp.Header.Get(bus.HdrError); e != "" {
			return e
		}
		return "acknowledged"
	}
	obs := func(i int) *nats.Msg {
		p := []byte(`{"node":"again-a","ring":1,"state":"up","i":` + strconv.Itoa(i) + `}`)
		return &nats.Msg{Subject: bus.Ring1Obs(id), Header: s.Sign(p, time.Now()).Header(), Data: p}
	}
	first, second := obs(1), obs(2)
	var got []string
	for _, m := range []*nats.Msg{first, second, second, second, first} {
		got = append(got, send(m))
	}
	// Restarted (SIGKILL), ring 0 reads the stored latest with its signature: the copy is
	// still acknowledged, the one before still refused.
	r.restart()
	harness.Eventually(t, 30*time.Second, func() bool {
		_, err := nc.RequestMsg(&nats.Msg{Subject: second.Subject, Header: second.Header, Data: second.Data}, 2*time.Second)
		return err == nil
	}, "an answer after the restart")
	got = append(got, send(second), send(first))
	want := []string{"acknowledged", "acknowledged", "acknowledged", "acknowledged", "replay", "acknowledged", "replay"}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Fatalf("answers %q, want %q", got, want)
		}
	}
	store, err := inventory.Open(t.Context(), r.dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stored, err := store.Observations(t.Context(), id, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[uint64]int{}
	for _, o := range stored {
		seqs[o.Seq]++
	}
	seq, _ := strconv.ParseUint(second.Header.Get(bus.HdrSeq), 10, 64)
	if seqs[seq] != 1 {
		t.Fatalf("the observation sent three times is stored %d times: %v", seqs[seq], seqs)
	}
	t.Logf("answers %q; stored seqs %v", got, seqs)
}
