package bench

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
)

// heartbeat is a payload of the size ring 1 nodes send every 5 s.
var heartbeat = []byte(`{"node":"ring1-0000","ring":1,"state":"up","time":"2026-11-22T00:00:00Z","cpu":0.0123,"mem":73400320,"load1":0.42,"uptime":86400.5}`)

// VerifyOptions are the options of Verify.
type VerifyOptions struct {
	Output string // "text" or "json"
}

// VerifyFigures are Verify's results.
type VerifyFigures struct {
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

// Verify measures envelope signing and verification, one at a time and in batches as ring 0
// ingests, on one core and on all, next to raw crypto/ed25519 verification.
func Verify(_ context.Context, opt VerifyOptions, stdout io.Writer) error {
	out := opt.Output
	if out != "text" && out != "json" {
		return usagef("bench verify: -o must be text or json")
	}
	f := VerifyFigures{Cores: runtime.GOMAXPROCS(0)}
	f.SignPerSec = perSecond(benchSign)
	f.VerifyPerSec = perSecond(func(n int) func() { return benchEnvelopeVerify(n, false) })
	f.RawVerifyPerSec = perSecond(func(n int) func() { return benchRaw(n, false) })
	f.VerifyAllPerSec = perSecond(func(n int) func() { return benchEnvelopeVerify(n, true) })
	f.RawAllPerSec = perSecond(func(n int) func() { return benchRaw(n, true) })
	f.BatchPerSec = perSecond(func(n int) func() { return benchBatchVerify(n, false) })
	f.BatchAllPerSec = perSecond(func(n int) func() { return benchBatchVerify(n, true) })
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

func benchSign(n int) func() {
	att, _ := keys.NewAttestation()
	s := bus.NewSigner("ring1-0000", att)
	now := time.Now()
	return func() {
		for range n {
			s.Sign(heartbeat, now).Header()
		}
	}
}

// benchEnvelopeVerify verifies pre-signed heartbeats (signing is not what is measured). Each
// goroutine verifies its own node's messages in order, so high-water marks keep rising.
func benchEnvelopeVerify(n int, parallel bool) func() {
	v := bus.NewVerifier(time.Hour)
	now := time.Now()
	var nodes atomic.Int64
	part := func(n int) func() {
		id := enjin.NodeID("ring1-" + strconv.FormatInt(nodes.Add(1), 10))
		att, _ := keys.NewAttestation()
		_ = v.Register(id, att.Public(), 0)
		s := bus.NewSigner(id, att)
		hs := make([]nats.Header, n)
		for i := range hs {
			hs[i] = s.Sign(heartbeat, now).Header()
		}
		return func() {
			for _, h := range hs {
				if _, err := v.Verify(id, h, heartbeat, now); err != nil {
					panic(err)
				}
			}
		}
	}
	return spread(n, parallel, part)
}

func benchRaw(n int, parallel bool) func() {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := bus.Canonical(nil, "ring1-0000", 1, 1, heartbeat)
	sig := ed25519.Sign(priv, msg)
	part := func(n int) func() {
		return func() {
			for range n {
				ed25519.Verify(pub, msg, sig)
			}
		}
	}
	return spread(n, parallel, part)
}

const batchSize = 256

// benchBatchVerify verifies pre-signed heartbeats of many nodes in batches, as ring 0 does.
func benchBatchVerify(n int, parallel bool) func() {
	v := bus.NewVerifier(time.Hour)
	now := time.Now()
	var next atomic.Int64
	part := func(n int) func() {
		signers := make([]*bus.Signer, 64)
		for i := range signers {
			id := enjin.NodeID("batch-" + strconv.FormatInt(next.Add(1), 10))
			att, _ := keys.NewAttestation()
			_ = v.Register(id, att.Public(), 0)
			signers[i] = bus.NewSigner(id, att)
		}
		items := make([]bus.Item, n)
		for i := range items {
			s := signers[i%len(signers)]
			items[i] = bus.Item{Node: s.Node(), Header: s.Sign(heartbeat, now).Header(), Payload: heartbeat}
		}
		return func() {
			for done := 0; done < n; done += batchSize {
				batch := items[done:min(done+batchSize, n)]
				v.VerifyBatch(batch, now)
				if batch[0].Err != nil {
					panic(batch[0].Err)
				}
			}
		}
	}
	return spread(n, parallel, part)
}
