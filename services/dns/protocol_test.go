package dns_test

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// withOPT adds an OPT record of the given version, payload size and DO bit to m.
func withOPT(m *dns.Msg, version uint8, size uint16, do bool) *dns.Msg {
	m.SetEdns0(size, do)
	m.IsEdns0().SetVersion(version)
	return m
}

// TestMalformedRequests hands the handler requests the server's accept function would
// normally filter, so the handler's own checks are exercised.
func TestMalformedRequests(t *testing.T) {
	s := newServer(t, testConfig(t))
	s.SetApp("acme", "web")
	app := "web.acme.apps.enjin.test."
	twoQuestions := query(app, dns.TypeA)
	twoQuestions.Question = append(twoQuestions.Question, dns.Question{Name: app, Qtype: dns.TypeAAAA, Qclass: dns.ClassINET})
	twoOPTs := withOPT(withOPT(query(app, dns.TypeA), 0, 1232, false), 0, 4096, false)
	chaos := query("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	inZoneAny := query(app, dns.TypeA)
	inZoneAny.Question[0].Qclass = dns.ClassANY
	notify := query(zoneName, dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	update := new(dns.Msg).SetUpdate(zoneName)
	for _, tc := range []struct {
		name string
		req  *dns.Msg
		want want
	}{
		{"zero questions", new(dns.Msg), want{rcode: dns.RcodeFormatError}},
		{"two questions", twoQuestions, want{rcode: dns.RcodeFormatError}},
		{"two OPT records", twoOPTs, want{rcode: dns.RcodeFormatError}},
		{"class CHAOS", chaos, want{rcode: dns.RcodeRefused}},
		{"class ANY", inZoneAny, want{rcode: dns.RcodeRefused}},
		{"opcode NOTIFY", notify, want{rcode: dns.RcodeNotImplemented}},
		{"opcode UPDATE", update, want{rcode: dns.RcodeNotImplemented}},
		{"AXFR", query(zoneName, dns.TypeAXFR), want{rcode: dns.RcodeRefused}},
		{"IXFR", query(zoneName, dns.TypeIXFR), want{rcode: dns.RcodeRefused}},
		{"EDNS version 1", withOPT(query(app, dns.TypeA), 1, 1232, false), want{rcode: dns.RcodeBadVers}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply := serve(t, s, tc.req, false)
			check(t, reply, tc.want)
			if reply.Id != tc.req.Id || !reply.Response {
				t.Errorf("reply id %d response %v, want id %d response true", reply.Id, reply.Response, tc.req.Id)
			}
		})
	}
}

func TestResponsesAreIgnored(t *testing.T) {
	s := newServer(t, testConfig(t))
	r := query(zoneName, dns.TypeSOA)
	r.Response = true
	if reply := serve(t, s, r, false); reply != nil {
		t.Errorf("answered a response: %v", reply)
	}
}

func TestEDNS(t *testing.T) {
	s := newServer(t, testConfig(t))
	s.SetApp("acme", "web")
	udp, _ := start(t, s)
	for _, do := range []bool{false, true} {
		q := withOPT(query("web.acme.apps.enjin.test.", dns.TypeA), 0, 4096, do)
		reply := exchange(t, "udp", udp, q)
		check(t, reply, want{aa: true, answer: []string{"web.acme.apps.enjin.test. A 10.1.2.3"}})
		opt := reply.IsEdns0()
		if opt == nil {
			t.Fatal("no OPT in the reply to an EDNS query")
		}
		if opt.Version() != 0 || opt.UDPSize() != 1232 || opt.Do() != do {
			t.Errorf("OPT: got version %d size %d DO %v want 0 1232 %v", opt.Version(), opt.UDPSize(), opt.Do(), do)
		}
	}
	if reply := exchange(t, "udp", udp, query("web.acme.apps.enjin.test.", dns.TypeA)); reply.IsEdns0() != nil {
		t.Error("OPT in the reply to a query without EDNS")
	}
	bad := exchange(t, "udp", udp, withOPT(query("web.acme.apps.enjin.test.", dns.TypeA), 1, 1232, false))
	if bad.Rcode != dns.RcodeBadVers || bad.IsEdns0() == nil || bad.IsEdns0().Version() != 0 {
		t.Errorf("EDNS version 1: got rcode %s OPT %v want BADVERS with a version 0 OPT", dns.RcodeToString[bad.Rcode], bad.IsEdns0())
	}
}

// TestTruncation uses a zone whose name is long enough that the apex NS answer with its glue
// exceeds 512 bytes: over UDP without EDNS the reply must fit and say TC, over TCP it is whole.
func TestTruncation(t *testing.T) {
	label := strings.Repeat("z", 63)
	cfg := testConfig(t)
	cfg.AppsDomain = label + "." + label + "." + label + "." + strings.Repeat("t", 50)
	s := newServer(t, cfg)
	udp, tcp := start(t, s)
	// Mixed case defeats name compression between the question and the glue.
	apex := strings.ToUpper(dns.Fqdn(cfg.AppsDomain))
	full := exchange(t, "tcp", tcp, query(apex, dns.TypeNS))
	if full.Truncated || len(full.Extra) != 2 {
		t.Fatalf("over TCP: got TC %v and %d glue records want no TC and 2", full.Truncated, len(full.Extra))
	}
	if n := full.Len(); n <= dns.MinMsgSize {
		t.Fatalf("whole reply is %d bytes, not more than %d: the test no longer tests truncation", n, dns.MinMsgSize)
	}
	w := &recorder{}
	s.ServeDNS(w, query(apex, dns.TypeNS))
	if w.packErr != nil || len(w.wire) > dns.MinMsgSize {
		t.Fatalf("over UDP: reply of %d bytes (pack error %v) want at most %d", len(w.wire), w.packErr, dns.MinMsgSize)
	}
	cut := exchange(t, "udp", udp, query(apex, dns.TypeNS))
	if !cut.Truncated {
		t.Errorf("over UDP: TC not set on a reply missing %d records", 3-len(cut.Answer)-len(cut.Extra))
	}
	big := exchange(t, "udp", udp, withOPT(query(apex, dns.TypeNS), 0, 4096, false))
	if big.Truncated || len(big.Extra) != 3 {
		t.Errorf("over UDP with EDNS: got TC %v and %d additional records want no TC and 3 (glue, OPT)", big.Truncated, len(big.Extra))
	}
}
