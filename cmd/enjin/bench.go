package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"enjin/bus"
	"enjin/keys"
	"enjin/rings"
)

func benchCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "measure enjin on this machine: verify, ingest, router, vm, net",
		Example: `  enjin bench verify
  enjin bench ingest --nodes 100000 --rate 20000
  enjin bench router -o json
  enjin bench vm --kernel var/guest/vmlinuz --initrd var/guest/initrd.img
  enjin bench net`,
	}
	c.AddCommand(benchVerifyCmd(), benchIngestCmd(), benchRouterCmd(), benchVMCmd(g), benchNetCmd(), benchDeployCmd(g))
	return c
}

func benchVerifyCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "verify",
		Short: "envelope sign/s and verify/s next to raw crypto/ed25519 verify/s, 1 core and all cores",
		Args:  argsBetween(0, 0, "no arguments"),
		RunE:  func(c *cobra.Command, _ []string) error { return benchVerify(out, c.OutOrStdout()) },
	}
	c.Flags().StringVarP(&out, "output", "o", "text", "output format: text or json")
	return c
}

// heartbeat is a payload of the size ring 1 nodes send every 5 s.
var heartbeat = []byte(`{"node":"ring1-0000","ring":1,"state":"up","time":"2026-11-22T00:00:00Z","cpu":0.0123,"mem":73400320,"load1":0.42,"uptime":86400.5}`)

type verifyFigures struct {
	Cores           int     `json:"cores"`
	SignPerSec      float64 `json:"sign_per_sec"`
	VerifyPerSec    float64 `json:"verify_per_sec"`
	RawVerifyPerSec float64 `json:"raw_ed25519_verify_per_sec"`
	Ratio           float64 `json:"verify_ratio"`
	VerifyAllPerSec float64 `json:"verify_all_cores_per_sec"`
	BatchPerSec     float64 `json:"verify_batch_per_sec"`
	BatchAllPerSec  float64 `json:"verify_batch_all_cores_per_sec"`
	RawAllPerSec    float64 `json:"raw_ed25519_verify_all_cores_per_sec"`
	RatioAllCores   float64 `json:"verify_ratio_all_cores"`
}

func benchVerify(out string, stdout io.Writer) error {
	if out != "text" && out != "json" {
		return usagef("bench verify: -o must be text or json")
	}
	f := verifyFigures{Cores: runtime.GOMAXPROCS(0)}
	f.SignPerSec = perSec(testing.Benchmark(benchSign))
	f.VerifyPerSec = perSec(testing.Benchmark(func(b *testing.B) { benchEnvelopeVerify(b, false) }))
	f.RawVerifyPerSec = perSec(testing.Benchmark(func(b *testing.B) { benchRaw(b, false) }))
	f.VerifyAllPerSec = perSec(testing.Benchmark(func(b *testing.B) { benchEnvelopeVerify(b, true) }))
	f.RawAllPerSec = perSec(testing.Benchmark(func(b *testing.B) { benchRaw(b, true) }))
	f.BatchPerSec = perSec(testing.Benchmark(func(b *testing.B) { benchBatchVerify(b, false) }))
	f.BatchAllPerSec = perSec(testing.Benchmark(func(b *testing.B) { benchBatchVerify(b, true) }))
	f.Ratio = f.VerifyPerSec / f.RawVerifyPerSec
	f.RatioAllCores = f.VerifyAllPerSec / f.RawAllPerSec
	if out == "json" {
		return json.NewEncoder(stdout).Encode(f)
	}
	fmt.Fprintf(stdout, "envelope sign           %9.0f /s  (1 core)\n", f.SignPerSec)
	fmt.Fprintf(stdout, "envelope verify         %9.0f /s  (1 core)\n", f.VerifyPerSec)
	fmt.Fprintf(stdout, "raw ed25519 verify      %9.0f /s  (1 core)\n", f.RawVerifyPerSec)
	fmt.Fprintf(stdout, "ratio verify/raw        %9.2f\n", f.Ratio)
	fmt.Fprintf(stdout, "envelope verify         %9.0f /s  (%d cores)\n", f.VerifyAllPerSec, f.Cores)
	fmt.Fprintf(stdout, "raw ed25519 verify      %9.0f /s  (%d cores)\n", f.RawAllPerSec, f.Cores)
	fmt.Fprintf(stdout, "ratio verify/raw        %9.2f  (%d cores)\n", f.RatioAllCores, f.Cores)
	fmt.Fprintf(stdout, "envelope verify, batch  %9.0f /s  (1 core, batches of %d, as ring 0 ingests)\n", f.BatchPerSec, batchSize)
	fmt.Fprintf(stdout, "envelope verify, batch  %9.0f /s  (%d cores; %.2f× raw)\n", f.BatchAllPerSec, f.Cores, f.BatchAllPerSec/f.RawAllPerSec)
	return nil
}

func perSec(r testing.BenchmarkResult) float64 {
	if r.N == 0 || r.T == 0 {
		return 0
	}
	return float64(r.N) / r.T.Seconds()
}

func benchSign(b *testing.B) {
	att, _ := keys.NewAttestation()
	s := bus.NewSigner("ring1-0000", att)
	now := time.Now()
	for b.Loop() {
		s.Sign(heartbeat, now).Header()
	}
}

// benchEnvelopeVerify verifies pre-signed heartbeats (signing is not what is measured). Each
// goroutine verifies its own node's messages in order, so high-water marks keep rising.
func benchEnvelopeVerify(b *testing.B, parallel bool) {
	v := bus.NewVerifier(time.Hour)
	now := time.Now()
	var nodes atomic.Int64
	type batch struct {
		id rings.NodeID
		hs []nats.Header
	}
	prepare := func(n int) batch {
		id := rings.NodeID("ring1-" + strconv.FormatInt(nodes.Add(1), 10))
		att, _ := keys.NewAttestation()
		_ = v.Register(id, att.Public(), 0)
		s := bus.NewSigner(id, att)
		hs := make([]nats.Header, n)
		for i := range hs {
			hs[i] = s.Sign(heartbeat, now).Header()
		}
		return batch{id, hs}
	}
	verify := func(bt batch, i int) {
		if _, err := v.Verify(bt.id, bt.hs[i], heartbeat, now); err != nil {
			panic(err)
		}
	}
	if !parallel {
		bt := prepare(b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			verify(bt, i)
		}
		return
	}
	// RunParallel splits b.N among GOMAXPROCS goroutines; give each a little more than its
	// share, signed before the clock starts.
	procs := runtime.GOMAXPROCS(0)
	batches := make(chan batch, procs)
	for range procs {
		batches <- prepare(b.N/procs + b.N/10 + 16)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var bt batch
		select {
		case bt = <-batches:
		default:
			bt = prepare(b.N) // more goroutines than expected; rare and small
		}
		for i := 0; pb.Next(); i++ {
			if i == len(bt.hs) {
				bt, i = prepare(len(bt.hs)), 0
			}
			verify(bt, i)
		}
	})
}

func benchRaw(b *testing.B, parallel bool) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := bus.Canonical(nil, "ring1-0000", 1, 1, heartbeat)
	sig := ed25519.Sign(priv, msg)
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ed25519.Verify(pub, msg, sig)
			}
		})
		return
	}
	for b.Loop() {
		ed25519.Verify(pub, msg, sig)
	}
}

const batchSize = 256

// benchBatchVerify verifies pre-signed heartbeats of many nodes in batches, as ring 0 does.
func benchBatchVerify(b *testing.B, parallel bool) {
	v := bus.NewVerifier(time.Hour)
	now := time.Now()
	var next atomic.Int64
	prepare := func(n int) []bus.Item {
		signers := make([]*bus.Signer, 64)
		for i := range signers {
			id := rings.NodeID("batch-" + strconv.FormatInt(next.Add(1), 10))
			att, _ := keys.NewAttestation()
			_ = v.Register(id, att.Public(), 0)
			signers[i] = bus.NewSigner(id, att)
		}
		items := make([]bus.Item, n)
		for i := range items {
			s := signers[i%len(signers)]
			items[i] = bus.Item{Node: s.Node(), Header: s.Sign(heartbeat, now).Header(), Payload: heartbeat}
		}
		return items
	}
	run := func(items []bus.Item, n int) {
		for done := 0; done < n; done += batchSize {
			batch := items[done:min(done+batchSize, n)]
			v.VerifyBatch(batch, now)
			if batch[0].Err != nil {
				panic(batch[0].Err)
			}
		}
	}
	if !parallel {
		items := prepare(b.N)
		b.ResetTimer()
		run(items, b.N)
		return
	}
	// Split b.N among the cores, each part signed before the clock starts.
	procs := runtime.GOMAXPROCS(0)
	parts := make([][]bus.Item, procs)
	for i := range parts {
		n := b.N / procs
		if i == 0 {
			n += b.N % procs
		}
		parts[i] = prepare(n)
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, items := range parts {
		wg.Go(func() { run(items, len(items)) }) // ends when its part is verified
	}
	wg.Wait()
}
