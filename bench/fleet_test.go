package bench

import (
	"testing"
	"time"

	"enjin/bus"
)

// A simulated node's late heartbeat is signed as sent, under a seq no seal of it that went
// out had, and that seal is sent again while fresh: ring 0's verifier accepts each new seal,
// acknowledges a copy of the latest again (a duplicate), and the node's next heartbeat,
// signed ahead, still goes as signed.
func TestLateHeartbeatsKeepTheirSeqs(t *testing.T) {
	s := makeSigners(1)[0]
	v := bus.NewVerifier(0)
	if err := v.Register(s.Node(), s.Public(), 0); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	msgs := presign([]*simSigner{s}, 2, 0.02, t0) // due at t0 and t0+50 s
	var n simNode
	send := func(m signedMsg, due, now time.Time) (string, bool, string) {
		hdr, signed := n.seal(m, due, now, s)
		it := []bus.Item{{Node: m.node, Header: hdr, Payload: m.data}}
		return verdictOf(v, it, now), signed, hdr.Get(bus.HdrSeq)
	}
	m0, m1 := msgs[0], msgs[1]
	due0, due1 := t0, t0.Add(50*time.Second)
	steps := []struct {
		name   string
		m      signedMsg
		due    time.Time
		now    time.Time
		want   string
		signed bool
	}{
		{"on time: as signed ahead", m0, due0, t0.Add(time.Second), "accepted", false},
		{"its answer lost, 26 s late: signed as sent, one seq up", m0, due0, t0.Add(26 * time.Second), "accepted", true},
		{"that seal again, fresh", m0, due0, t0.Add(40 * time.Second), "duplicate", false},
		{"52 s late: signed again, one more seq up", m0, due0, t0.Add(52 * time.Second), "accepted", true},
	}
	var seqs []string
	for _, st := range steps {
		got, signed, seq := send(st.m, st.due, st.now)
		if got != st.want || signed != st.signed {
			t.Fatalf("%s: %s (signed now %v), want %s (%v)", st.name, got, signed, st.want, st.signed)
		}
		seqs = append(seqs, seq)
	}
	if seqs[0] != m0.hdr.Get(bus.HdrSeq) || seqs[1] == seqs[0] || seqs[3] == seqs[1] {
		t.Fatalf("seqs %v", seqs)
	}
	// The next heartbeat: 27 s late and never sent, signed as sent under its own seq; then
	// its successor's seal signed ahead would still be above it.
	n.seals, n.late = 0, nil
	got, signed, seq := send(m1, due1, due1.Add(27*time.Second))
	if got != "accepted" || !signed || seq != m1.hdr.Get(bus.HdrSeq) {
		t.Fatalf("the next, late and never sent: %s, signed now %v, seq %s (signed ahead %s)", got, signed, seq, m1.hdr.Get(bus.HdrSeq))
	}
	t.Logf("seqs of one heartbeat's seals: %v; the next's %s", seqs, seq)
}

func verdictOf(v *bus.Verifier, it []bus.Item, now time.Time) string {
	v.VerifyBatch(it, now)
	switch {
	case it[0].Duplicate:
		return "duplicate"
	case it[0].Err != nil:
		return it[0].Err.Error()
	}
	return "accepted"
}

// A send's reply subject names its connection, message, seq and try, as the fleet's
// subscriptions parse it.
func TestReplySubject(t *testing.T) {
	for _, tc := range []struct {
		conn, k int
		seq     string
		try     int
		want    string
	}{
		{0, 0, "1", 1, "_INBOX.fleet.0.0.1.1"},
		{3, 674999, "123456789", 12, "_INBOX.fleet.3.674999.123456789.12"},
	} {
		if got := replySubject(tc.conn, tc.k, tc.seq, tc.try); got != tc.want {
			t.Errorf("replySubject(%d, %d, %q, %d) = %q, want %q", tc.conn, tc.k, tc.seq, tc.try, got, tc.want)
		}
	}
}
