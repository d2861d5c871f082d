package dns_test

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestHostileUDP sends 5,000 garbage packets, then checks that valid queries over UDP and
// TCP are still answered.
func TestHostileUDP(t *testing.T) {
	s := newServer(t, testConfig(t))
	s.SetApp("acme", "web")
	udp, tcp := start(t, s)

	conn, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	valid, err := query("web.acme.apps.enjin.test.", dns.TypeA).Pack()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		if _, err := conn.Write(garbage(rng, valid)); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if i%500 == 499 {
			drain(conn) // keep replies to the garbage from piling up in our socket
		}
	}

	want := want{aa: true, answer: []string{"web.acme.apps.enjin.test. A 10.1.2.3"}}
	check(t, exchange(t, "udp", udp, query("web.acme.apps.enjin.test.", dns.TypeA)), want)
	check(t, exchange(t, "tcp", tcp, query("web.acme.apps.enjin.test.", dns.TypeA)), want)
}

// garbage returns one hostile packet: random bytes, a valid query with bytes flipped, a
// random header with lying counts, or a valid header over a random body.
func garbage(rng *rand.Rand, valid []byte) []byte {
	switch rng.IntN(4) {
	case 0:
		return randomBytes(rng, rng.IntN(600))
	case 1:
		b := append([]byte(nil), valid...)
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		}
		return b[:rng.IntN(len(b)+1)]
	case 2:
		b := randomBytes(rng, 12+rng.IntN(100))
		binary.BigEndian.PutUint16(b[4:], uint16(rng.IntN(3))) // QDCOUNT 0–2
		return b
	default:
		return append(append([]byte(nil), valid[:12]...), randomBytes(rng, rng.IntN(300))...)
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// drain reads whatever replies are waiting on conn, stopping at the first read that would
// wait more than a millisecond.
func drain(conn net.Conn) {
	buf := make([]byte, 65535)
	for {
		conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}
