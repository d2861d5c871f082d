package bus_test

import (
	"crypto/ed25519"
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
