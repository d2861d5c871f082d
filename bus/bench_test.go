package bus_test

import (
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
)

// heartbeat is a payload of the size ring 1 sends every 5 s.
var heartbeat = []byte(`{"node":"ring1-0000","ring":1,"state":"up","time":"2026-11-22T00:00:00Z","cpu":0.0123,"mem":73400320,"load1":0.42,"uptime":86400.5}`)

func BenchmarkEnvelopeSign(b *testing.B) {
	att, _ := keys.NewAttestation()
	s := bus.NewSigner("ring1-0000", att)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		s.Sign(heartbeat, now).Header()
	}
}

func BenchmarkEnvelopeVerify(b *testing.B) {
	v := bus.NewVerifier(time.Hour)
	att, _ := keys.NewAttestation()
	v.Register("ring1-0000", att.Public(), 0)
	s := bus.NewSigner("ring1-0000", att)
	msgs := make([]nats.Header, 0, 4096)
	now := time.Now()
	for range cap(msgs) {
		msgs = append(msgs, s.Sign(heartbeat, now).Header())
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(msgs) { // seqs must keep rising: re-sign a fresh batch off the clock
			b.StopTimer()
			for j := range msgs {
				msgs[j] = s.Sign(heartbeat, now).Header()
			}
			i = 0
			b.StartTimer()
		}
		if _, err := v.Verify("ring1-0000", msgs[i], heartbeat, now); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkEd25519Verify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := bus.Canonical(nil, enjin.NodeID("ring1-0000"), 1, 1, heartbeat)
	sig := ed25519.Sign(priv, msg)
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
	}
}

// BenchmarkVerifyBatch verifies batches of 256 heartbeats from 256 nodes, as ring 0's
// ingest takes them; an op is one batch.
func BenchmarkVerifyBatch(b *testing.B) {
	const n = 256
	v := bus.NewVerifier(time.Hour)
	signers := make([]*bus.Signer, n)
	for i := range signers {
		att, _ := keys.NewAttestation()
		id := enjin.NodeID(fmt.Sprintf("ring1-%04d", i))
		v.Register(id, att.Public(), 0)
		signers[i] = bus.NewSigner(id, att)
	}
	now := time.Now()
	batches := make([][]bus.Item, 16)
	sign := func() { // seqs must keep rising: fresh batches are signed off the clock
		for k := range batches {
			batches[k] = make([]bus.Item, n)
			for i, s := range signers {
				batches[k][i] = bus.Item{Node: s.Node(), Header: s.Sign(heartbeat, now).Header(), Payload: heartbeat}
			}
		}
	}
	sign()
	b.ReportAllocs()
	k := 0
	for b.Loop() {
		if k == len(batches) {
			b.StopTimer()
			sign()
			k = 0
			b.StartTimer()
		}
		v.VerifyBatch(batches[k], now)
		if err := batches[k][n-1].Err; err != nil {
			b.Fatal(err)
		}
		k++
	}
}
