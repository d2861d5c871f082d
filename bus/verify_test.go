package bus_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"enjin"
	"enjin/bus"
	"enjin/keys"
)

type signed struct {
	node enjin.NodeID
	h    nats.Header
	p    []byte
}

func newNode(t testing.TB, v *bus.Verifier, n enjin.NodeID) *bus.Signer {
	a, err := keys.NewAttestation()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Register(n, a.Public(), 0); err != nil {
		t.Fatal(err)
	}
	return bus.NewSigner(n, a)
}

func sign(s *bus.Signer, payload string, at time.Time) signed {
	p := []byte(payload)
	return signed{s.Node(), s.Sign(p, at).Header(), p}
}

func reason(err error) string {
	var re *bus.RejectError
	if errors.As(err, &re) {
		return re.Reason.String()
	}
	return "accepted"
}

func cloneHeader(h nats.Header) nats.Header {
	c := nats.Header{}
	for k, v := range h {
		c[k] = append([]string(nil), v...)
	}
	return c
}

// TestSignedObservations runs every attack the envelope must withstand, counts rejections by
// reason, and checks valid observations still pass, including after a verifier restart that
// reloads the high-water marks.
func TestSignedObservations(t *testing.T) {
	v := bus.NewVerifier(0)
	a := newNode(t, v, "node-a")
	b := newNode(t, v, "node-b")
	now := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))

	var valid []signed
	for i := range 100 {
		m := sign(a, `{"node":"node-a","state":"up","i":`+strconv.Itoa(i)+`}`, now)
		if _, err := v.Verify(m.node, m.h, m.p, now); err != nil {
			t.Fatalf("valid observation %d rejected: %v", i, err)
		}
		valid = append(valid, m)
	}
	counts := map[string]map[string]int{}
	attempt := func(kind string, node enjin.NodeID, h nats.Header, p []byte) {
		if counts[kind] == nil {
			counts[kind] = map[string]int{}
		}
		it := []bus.Item{{Node: node, Header: h, Payload: p}}
		v.VerifyBatch(it, now)
		if it[0].Duplicate {
			counts[kind]["duplicate"]++
		} else {
			counts[kind][reason(it[0].Err)]++
		}
	}
	// 10,000 replays of observations already accepted but the latest.
	for i := range 10_000 {
		m := valid[i%(len(valid)-1)]
		attempt("replay", m.node, m.h, m.p)
	}
	// 1,000 tampered messages, fresh each time so replay cannot be what stops them.
	for i := range 1000 {
		m := sign(a, `{"node":"node-a","state":"up"}`, now)
		h, p := cloneHeader(m.h), append([]byte(nil), m.p...)
		switch i % 5 {
		case 0: // payload
			p[rng.IntN(len(p))] ^= byte(1 + rng.IntN(255))
		case 1: // timestamp header, still inside the window
			ts, _ := strconv.ParseInt(h.Get(bus.HdrTs), 10, 64)
			h.Set(bus.HdrTs, strconv.FormatInt(ts+int64(1+rng.IntN(1000)), 10))
		case 2: // sequence header, higher so it is not a replay
			seq, _ := strconv.ParseUint(h.Get(bus.HdrSeq), 10, 64)
			h.Set(bus.HdrSeq, strconv.FormatUint(seq+uint64(1+rng.IntN(1000)), 10))
		case 3: // signature bits
			sig, _ := base64.RawURLEncoding.DecodeString(h.Get(bus.HdrSig))
			sig[rng.IntN(len(sig))] ^= byte(1 + rng.IntN(255))
			h.Set(bus.HdrSig, base64.RawURLEncoding.EncodeToString(sig))
		case 4: // header damage: missing, doubled, garbage
			switch rng.IntN(3) {
			case 0:
				delete(h, []string{bus.HdrSigner, bus.HdrTs, bus.HdrSeq, bus.HdrSig}[rng.IntN(4)])
			case 1:
				h[bus.HdrSig] = append(h[bus.HdrSig], h.Get(bus.HdrSig))
			case 2:
				h.Set(bus.HdrSeq, "+"+h.Get(bus.HdrSeq))
			}
		}
		attempt("tampered", "node-a", h, p)
	}
	// Observations carried to another node's subject.
	for range 1000 {
		m := sign(a, `{"node":"node-a"}`, now)
		attempt("carried", "node-b", m.h, m.p)
	}
	// Signed with the auth key instead of the attestation key, claiming either key as signer.
	auth, _ := nkeys.CreateUser()
	for i := range 1000 {
		m := sign(a, `{"node":"node-a"}`, now)
		payload := m.p
		ts, _ := strconv.ParseInt(m.h.Get(bus.HdrTs), 10, 64)
		seq, _ := strconv.ParseUint(m.h.Get(bus.HdrSeq), 10, 64)
		sig, _ := auth.Sign(bus.Canonical(nil, "node-a", ts, seq, payload))
		h := cloneHeader(m.h)
		h.Set(bus.HdrSig, base64.RawURLEncoding.EncodeToString(sig))
		if i%2 == 1 {
			raw, _ := auth.PublicKey()
			pub, _ := nkeys.Decode(nkeys.PrefixByteUser, []byte(raw))
			h.Set(bus.HdrSigner, keys.EncodeAttestationPublic(ed25519.PublicKey(pub)))
		}
		attempt("auth-key", "node-a", h, payload)
	}
	// ±45 s outside the window.
	for i := range 1000 {
		off := 45 * time.Second
		if i%2 == 1 {
			off = -off
		}
		m := sign(a, `{"node":"node-a"}`, now.Add(off))
		attempt("window", "node-a", m.h, m.p)
	}
	// Unknown node.
	for range 100 {
		m := sign(a, `{}`, now)
		attempt("unknown", "node-z", m.h, m.p)
	}
	total := 0
	for kind, byReason := range counts {
		t.Logf("%-9s %v", kind, byReason)
		if n := byReason["accepted"]; n != 0 {
			t.Errorf("%s: %d accepted, want 0", kind, n)
		}
		for _, n := range byReason {
			total += n
		}
	}
	st := v.Stats()
	t.Logf("verifier: accepted %d, rejected %v (%d attempts)", st.Accepted, st.Rejected, total)
	if st.Accepted != uint64(len(valid)) || st.Duplicates != 0 {
		t.Errorf("the verifier counted %d accepted and %d duplicates, want %d and 0", st.Accepted, st.Duplicates, len(valid))
	}
	wantReason := map[string]string{"replay": "replay", "carried": "wrong-signer", "window": "outside-window", "unknown": "unknown-node"}
	for kind, r := range wantReason {
		if counts[kind][r] != sumOf(counts[kind]) {
			t.Errorf("%s: rejected as %v, want all %s", kind, counts[kind], r)
		}
	}
	if counts["replay"]["replay"] != 10_000 || sumOf(counts["tampered"]) != 1000 {
		t.Errorf("counts %v", counts)
	}

	// A restart: a new verifier registered with the persisted marks still refuses replays and
	// accepts new observations from both nodes.
	marks := v.Marks()
	v2 := bus.NewVerifier(0)
	for n, pub := range map[enjin.NodeID]*bus.Signer{"node-a": a, "node-b": b} {
		if err := v2.Register(n, pubOf(pub), marks[n]); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range valid {
		if _, err := v2.Verify(m.node, m.h, m.p, now); reason(err) != "replay" {
			t.Fatalf("after restart, replay: %v", err)
		}
	}
	for _, s := range []*bus.Signer{a, b} {
		m := sign(s, `{"state":"up"}`, time.Now())
		if _, err := v2.Verify(m.node, m.h, m.p, time.Now()); err != nil {
			t.Fatalf("after restart, valid observation from %s: %v", m.node, err)
		}
	}
}

// A node's latest accepted observation sent again byte for byte (its answer was lost) passes
// as a duplicate, so its node is acknowledged, not told "replay" for what was stored; the
// mark does not move. Anything else at or below the mark is still a replay, and a copy whose
// bytes were changed still has its signature checked.
func TestLatestSentAgainIsADuplicate(t *testing.T) {
	v := bus.NewVerifier(0)
	att, err := keys.NewAttestation()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Register("n1", att.Public(), 0); err != nil {
		t.Fatal(err)
	}
	s := bus.NewSigner("n1", att)
	now := time.Now()
	verdict := func(ms ...signed) []string {
		items := make([]bus.Item, len(ms))
		for i, m := range ms {
			items[i] = bus.Item{Node: m.node, Header: m.h, Payload: m.p}
		}
		v.VerifyBatch(items, now)
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = reason(it.Err)
			if it.Duplicate {
				out[i] = "duplicate"
			}
		}
		return out
	}
	expect := func(what string, got []string, want ...string) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	first, second := sign(s, `{"i":1}`, now), sign(s, `{"i":2}`, now)
	expect("two new", verdict(first, second), "accepted", "accepted")
	mark := v.Marks()["n1"]
	expect("the latest, three times", verdict(second, second, second), "duplicate", "duplicate", "duplicate")
	expect("the one before", verdict(first), "replay")
	if m := v.Marks()["n1"]; m != mark {
		t.Errorf("duplicates moved the mark from %d to %d", mark, m)
	}

	// Another observation under the latest's sequence number, properly signed: a replay.
	seq, _ := strconv.ParseUint(second.h.Get(bus.HdrSeq), 10, 64)
	ts, _ := strconv.ParseInt(second.h.Get(bus.HdrTs), 10, 64)
	other := []byte(`{"i":"other"}`)
	h := cloneHeader(second.h)
	h.Set(bus.HdrSig, base64.RawURLEncoding.EncodeToString(att.Sign(bus.Canonical(nil, "n1", ts, seq, other))))
	expect("another observation at the mark", verdict(signed{"n1", h, other}), "replay")
	// The latest's seal on changed bytes: the signature is checked, as for a new one.
	expect("the latest's seal on other bytes", verdict(signed{"n1", second.h, other}), "bad-signature")

	// A copy in the same batch as its first: one accepted, one duplicate.
	third := sign(s, `{"i":3}`, now)
	expect("new and its copy in one batch", verdict(third, third), "accepted", "duplicate")

	// Registered again (another member learned the node, a key rotation to the same key):
	// the latest is still known. A verifier started afresh from the stored marks knows its
	// signature once told the store's newest (SetLatest), and not before: a replay then.
	if err := v.Register("n1", att.Public(), mark); err != nil {
		t.Fatal(err)
	}
	expect("after registering again", verdict(third), "duplicate")
	v2 := bus.NewVerifier(0)
	if err := v2.Register("n1", att.Public(), v.Marks()["n1"]); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Verify("n1", third.h, third.p, now); reason(err) != "replay" {
		t.Errorf("a fresh verifier: %v, want replay", err)
	}
	thirdSig, _ := base64.RawURLEncoding.DecodeString(third.h.Get(bus.HdrSig))
	thirdSeq, _ := strconv.ParseUint(third.h.Get(bus.HdrSeq), 10, 64)
	v2.SetLatest("n1", thirdSeq-1, thirdSig) // below the mark: ignored
	if _, err := v2.Verify("n1", third.h, third.p, now); reason(err) != "replay" {
		t.Errorf("a fresh verifier told an older latest: %v, want replay", err)
	}
	v2.SetLatest("n1", thirdSeq, thirdSig)
	items := []bus.Item{{Node: "n1", Header: third.h, Payload: third.p}}
	v2.VerifyBatch(items, now)
	if items[0].Err != nil || !items[0].Duplicate {
		t.Errorf("a fresh verifier told the latest: %v (duplicate %v), want a duplicate", items[0].Err, items[0].Duplicate)
	}
	if m := v2.Marks()["n1"]; m != thirdSeq {
		t.Errorf("mark %d after SetLatest, want %d", m, thirdSeq)
	}
	st := v.Stats()
	if st.Accepted != 3 || st.Duplicates != 5 {
		t.Errorf("counted %d accepted, %d duplicates; want 3 and 5", st.Accepted, st.Duplicates)
	}
	t.Logf("accepted %d, duplicates %d, rejected %v", st.Accepted, st.Duplicates, st.Rejected)
}

func sumOf(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// pubOf recovers a signer's public key from one of its seals.
func pubOf(s *bus.Signer) string { return s.Sign([]byte("x"), time.Now()).Signer }

func TestSequenceSurvivesSignerRestart(t *testing.T) {
	v := bus.NewVerifier(0)
	att, _ := keys.NewAttestation()
	v.Register("n1", att.Public(), 0)
	for range 3 {
		s := bus.NewSigner("n1", att) // a restarted node remembers nothing
		for range 10 {
			m := sign(s, "{}", time.Now())
			if _, err := v.Verify("n1", m.h, m.p, time.Now()); err != nil {
				t.Fatalf("restarted signer: %v", err)
			}
		}
	}
}

func FuzzVerify(f *testing.F) {
	att, _ := keys.NewAttestation()
	s := bus.NewSigner("n1", att)
	sl := s.Sign([]byte(`{"node":"n1"}`), time.Unix(1_700_000_000, 0))
	g := sl.Header()
	f.Add(g.Get(bus.HdrSigner), g.Get(bus.HdrTs), g.Get(bus.HdrSeq), g.Get(bus.HdrSig), []byte(`{"node":"n1"}`))
	f.Add("", "0", "-1", "!!", []byte{})
	f.Fuzz(func(t *testing.T, signer, ts, seq, sig string, payload []byte) {
		v := bus.NewVerifier(0)
		v.Register("n1", att.Public(), 0)
		h := nats.Header{bus.HdrSigner: {signer}, bus.HdrTs: {ts}, bus.HdrSeq: {seq}, bus.HdrSig: {sig}}
		_, err := v.Verify("n1", h, payload, time.Unix(1_700_000_000, 0))
		if err == nil {
			// Only the genuine seal and payload may pass.
			if sig != g.Get(bus.HdrSig) || ts != g.Get(bus.HdrTs) || seq != g.Get(bus.HdrSeq) ||
				string(payload) != `{"node":"n1"}` || signer != att.Public() {
				t.Fatalf("accepted a forged observation")
			}
		}
	})
}

// Batches find exactly the bad observations among good ones from many nodes.
func TestVerifyBatchFindsTheBadOnes(t *testing.T) {
	v := bus.NewVerifier(0)
	now := time.Now()
	var signers []*bus.Signer
	for i := range 20 {
		signers = append(signers, newNode(t, v, enjin.NodeID(fmt.Sprintf("b-%02d", i))))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	accepted := 0
	for round := range 50 {
		items := make([]bus.Item, 64)
		bad := map[int]bool{}
		for i := range items {
			m := sign(signers[rng.IntN(len(signers))], `{"state":"up"}`, now)
			items[i] = bus.Item{Node: m.node, Header: m.h, Payload: m.p}
			if round%2 == 1 && rng.IntN(10) == 0 {
				h := cloneHeader(m.h)
				sig, _ := base64.RawURLEncoding.DecodeString(h.Get(bus.HdrSig))
				sig[rng.IntN(len(sig))] ^= 0x40
				h.Set(bus.HdrSig, base64.RawURLEncoding.EncodeToString(sig))
				items[i].Header = h
				bad[i] = true
			}
		}
		v.VerifyBatch(items, now)
		for i, it := range items {
			if bad[i] != (reason(it.Err) == "bad-signature") {
				t.Fatalf("round %d item %d: bad %v, verdict %v", round, i, bad[i], it.Err)
			}
			if it.Err == nil {
				accepted++
			}
		}
	}
	t.Logf("batches: %d accepted, %v", accepted, v.Stats().Rejected)
}

// A stored observation, as the API answers it, verifies offline against the keys its signer
// has had; every way it can be wrong is named.
func TestVerifyStored(t *testing.T) {
	att, _ := keys.NewAttestation()
	other, _ := keys.NewAttestation()
	payload := []byte(`{"node":"n1","state":"up"}`)
	seal := bus.NewSigner("n1", att).Sign(payload, time.Now())
	good := enjin.SignedObservation{Node: "n1", Seq: seal.Seq, TsNs: seal.Ts, Signer: seal.Signer,
		Sig: seal.Sig, Payload: payload}
	// An instance's observation, signed by its ring 1 node as observer.
	cs := bus.NewSigner("r1", att).Sign(payload, time.Now())
	child := enjin.SignedObservation{Node: "i1", Observer: "r1", Seq: cs.Seq, TsNs: cs.Ts, Signer: cs.Signer,
		Sig: cs.Sig, Payload: payload}
	registered := []string{other.Public(), att.Public()}
	for name, c := range map[string]struct {
		o          enjin.SignedObservation
		registered []string
		want       string
	}{
		"good":                 {good, registered, ""},
		"by its observer":      {child, registered, ""},
		"key never the node's": {good, []string{other.Public()}, "signer is not a key registered for the node"},
		"payload changed": {func() enjin.SignedObservation {
			o := good
			o.Payload = []byte(`{"node":"n1","state":"down"}`)
			return o
		}(), registered, "bad signature"},
		"seq changed":      {func() enjin.SignedObservation { o := good; o.Seq++; return o }(), registered, "bad signature"},
		"observer dropped": {func() enjin.SignedObservation { o := child; o.Observer = ""; return o }(), registered, "bad signature"},
		"signature cut":    {func() enjin.SignedObservation { o := good; o.Sig = o.Sig[:32]; return o }(), registered, "bad signature"},
	} {
		if got := bus.VerifyStored(c.o, c.registered); got != c.want {
			t.Errorf("%s: %q, want %q", name, got, c.want)
		}
	}
}
