package dns_test

import (
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	enjindns "enjin/services/dns"
)

// want is what a reply should say; ns lists only the types in the authority section.
type want struct {
	rcode  int
	aa     bool
	answer []string // "name TYPE rdata"
	ns     []string // types
	extra  []string // "name TYPE rdata", OPT excluded
}

// check compares reply with w and reports every difference.
func check(t *testing.T, reply *dns.Msg, w want) {
	t.Helper()
	if reply == nil {
		t.Fatal("no reply")
	}
	if reply.Rcode != w.rcode {
		t.Errorf("rcode: got %s want %s", dns.RcodeToString[reply.Rcode], dns.RcodeToString[w.rcode])
	}
	if reply.Authoritative != w.aa {
		t.Errorf("AA: got %v want %v", reply.Authoritative, w.aa)
	}
	if got := rrs(reply.Answer); !slices.Equal(got, w.answer) {
		t.Errorf("answer: got %q want %q", got, w.answer)
	}
	var ns []string
	for _, rr := range reply.Ns {
		ns = append(ns, dns.TypeToString[rr.Header().Rrtype])
	}
	if !slices.Equal(ns, w.ns) {
		t.Errorf("authority: got %q want %q", ns, w.ns)
	}
	var extra []dns.RR
	for _, rr := range reply.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	if got := rrs(extra); !slices.Equal(got, w.extra) {
		t.Errorf("additional: got %q want %q", got, w.extra)
	}
}

// rrs renders records as "name TYPE rdata", without TTL and class.
func rrs(list []dns.RR) []string {
	var out []string
	for _, rr := range list {
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(append([]string{f[0]}, f[3:]...), " "))
	}
	return out
}

// zoneCases are the answers of a zone holding web.acme and api.acme.
var zoneCases = []struct {
	name  string
	qtype uint16
	want  want
}{
	{"web.acme.apps.enjin.test.", dns.TypeA, want{aa: true, answer: []string{"web.acme.apps.enjin.test. A 10.1.2.3"}}},
	{"web.acme.apps.enjin.test.", dns.TypeAAAA, want{aa: true, answer: []string{"web.acme.apps.enjin.test. AAAA fd00::53"}}},
	{"web.acme.apps.enjin.test.", dns.TypeANY, want{aa: true, answer: []string{
		"web.acme.apps.enjin.test. A 10.1.2.3", "web.acme.apps.enjin.test. AAAA fd00::53"}}},
	{"web.acme.apps.enjin.test.", dns.TypeMX, want{aa: true, ns: []string{"SOA"}}},
	{"web.acme.apps.enjin.test.", dns.TypeTXT, want{aa: true, ns: []string{"SOA"}}},
	{"WEB.Acme.APPS.enjin.TEST.", dns.TypeA, want{aa: true, answer: []string{"WEB.Acme.APPS.enjin.TEST. A 10.1.2.3"}}},
	{"api.acme.apps.enjin.test.", dns.TypeA, want{aa: true, answer: []string{"api.acme.apps.enjin.test. A 10.1.2.3"}}},
	{"db.acme.apps.enjin.test.", dns.TypeA, want{rcode: dns.RcodeNameError, aa: true, ns: []string{"SOA"}}},
	{"web.other.apps.enjin.test.", dns.TypeA, want{rcode: dns.RcodeNameError, aa: true, ns: []string{"SOA"}}},
	{"x.web.acme.apps.enjin.test.", dns.TypeA, want{rcode: dns.RcodeNameError, aa: true, ns: []string{"SOA"}}},
	{"a.b.web.acme.apps.enjin.test.", dns.TypeAAAA, want{rcode: dns.RcodeNameError, aa: true, ns: []string{"SOA"}}},
	{"other.apps.enjin.test.", dns.TypeA, want{rcode: dns.RcodeNameError, aa: true, ns: []string{"SOA"}}},
	{"acme.apps.enjin.test.", dns.TypeA, want{aa: true, ns: []string{"SOA"}}}, // empty non-terminal
	{"apps.enjin.test.", dns.TypeSOA, want{aa: true, answer: []string{
		"apps.enjin.test. SOA ns.apps.enjin.test. hostmaster.apps.enjin.test. 0 3600 600 86400 5"}}},
	{"apps.enjin.test.", dns.TypeNS, want{aa: true, answer: []string{"apps.enjin.test. NS ns.apps.enjin.test."},
		extra: []string{"ns.apps.enjin.test. A 10.1.2.3", "ns.apps.enjin.test. AAAA fd00::53"}}},
	{"apps.enjin.test.", dns.TypeA, want{aa: true, ns: []string{"SOA"}}},
	{"ns.apps.enjin.test.", dns.TypeA, want{aa: true, answer: []string{"ns.apps.enjin.test. A 10.1.2.3"}}},
	{"example.com.", dns.TypeA, want{rcode: dns.RcodeRefused}},
	{"enjin.test.", dns.TypeSOA, want{rcode: dns.RcodeRefused}},
	{"xapps.enjin.test.", dns.TypeA, want{rcode: dns.RcodeRefused}},
	{".", dns.TypeNS, want{rcode: dns.RcodeRefused}},
}

// zeroSerial blanks SOA serials, which depend on the clock, so replies compare.
func zeroSerial(m *dns.Msg) *dns.Msg {
	for _, rr := range slices.Concat(m.Answer, m.Ns) {
		if soa, ok := rr.(*dns.SOA); ok {
			soa.Serial = 0
		}
	}
	return m
}

func TestAnswers(t *testing.T) {
	s := newServer(t, testConfig(t))
	s.SetApp("acme", "web")
	s.SetApp("ACME", "Api") // names are case-insensitive on the way in too
	udp, tcp := start(t, s)
	for _, network := range []string{"udp", "tcp"} {
		addr := map[string]string{"udp": udp, "tcp": tcp}[network]
		for _, tc := range zoneCases {
			t.Run(network+"/"+tc.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
				check(t, zeroSerial(exchange(t, network, addr, query(tc.name, tc.qtype))), tc.want)
			})
		}
	}
}

func TestNoRouterV6(t *testing.T) {
	cfg := testConfig(t)
	cfg.RouterV6 = nil
	s := newServer(t, cfg)
	s.SetApp("acme", "web")
	udp, _ := start(t, s)
	check(t, exchange(t, "udp", udp, query("web.acme.apps.enjin.test.", dns.TypeAAAA)), want{aa: true, ns: []string{"SOA"}})
	check(t, exchange(t, "udp", udp, query("apps.enjin.test.", dns.TypeNS)), want{aa: true,
		answer: []string{"apps.enjin.test. NS ns.apps.enjin.test."}, extra: []string{"ns.apps.enjin.test. A 10.1.2.3"}})
}

func TestSetAndRemoveTakeEffectImmediately(t *testing.T) {
	s := newServer(t, testConfig(t))
	udp, _ := start(t, s)
	q := query("shop.zeta.apps.enjin.test.", dns.TypeA)
	serial := func() uint32 {
		return exchange(t, "udp", udp, query(zoneName, dns.TypeSOA)).Answer[0].(*dns.SOA).Serial
	}
	nx := want{rcode: dns.RcodeNameError, aa: true, ns: []string{"SOA"}}
	check(t, exchange(t, "udp", udp, q), nx)
	s0 := serial()
	s.SetApp("zeta", "shop")
	check(t, exchange(t, "udp", udp, q), want{aa: true, answer: []string{"shop.zeta.apps.enjin.test. A 10.1.2.3"}})
	s.SetApp("zeta", "shop") // again: no change
	if s1 := serial(); s1 != s0+1 {
		t.Errorf("serial after one change: got %d want %d", s1, s0+1)
	}
	s.RemoveApp("zeta", "shop")
	check(t, exchange(t, "udp", udp, q), nx)
	check(t, exchange(t, "udp", udp, query("zeta.apps.enjin.test.", dns.TypeA)), nx) // no longer a non-terminal
	s.RemoveApp("zeta", "shop")
	if s2 := serial(); s2 != s0+2 {
		t.Errorf("serial after two changes: got %d want %d", s2, s0+2)
	}
}

func TestSetAppIgnoresBadNames(t *testing.T) {
	s := newServer(t, testConfig(t))
	for _, n := range [][2]string{{"acme", ""}, {"acme", "a.b"}, {"", "web"}, {"acme", "-x"}, {"acme", `a\.b`}} {
		s.SetApp(n[0], n[1])
	}
	for _, name := range []string{`a\.b.acme.apps.enjin.test.`, "a.b.acme.apps.enjin.test.", "acme.apps.enjin.test."} {
		check(t, serve(t, s, query(name, dns.TypeA), false), want{rcode: dns.RcodeNameError, aa: true, ns: []string{"SOA"}})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := enjindns.New(enjindns.Config{AppsDomain: "bad..name", RouterV6: net.ParseIP("10.0.0.1")})
	if err == nil {
		t.Fatal("New accepted a bad config")
	}
	for _, want := range []string{"apps domain", "router IPv4", "router IPv6"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := enjindns.New(enjindns.Config{AppsDomain: ".", RouterV4: routerV4}); err == nil {
		t.Error("New accepted the root as apps domain")
	}
}

func TestRunTwice(t *testing.T) {
	s := newServer(t, testConfig(t))
	if u, c := s.Addr(); u != nil || c != nil {
		t.Errorf("Addr before Run: got %v, %v want nils", u, c)
	}
	start(t, s)
	if err := s.Run(t.Context()); !errors.Is(err, enjindns.ErrRunning) {
		t.Errorf("second Run: got %v want %v", err, enjindns.ErrRunning)
	}
}

func TestRunFailsOnBusyPort(t *testing.T) {
	_, tcp := start(t, newServer(t, testConfig(t)))
	cfg := testConfig(t)
	cfg.Addr = tcp
	if err := newServer(t, cfg).Run(t.Context()); err == nil {
		t.Error("Run on a busy address returned nil")
	}
}

// TestConcurrentChanges runs queries against changes for the race detector: every answer must
// be one of the two states the app can be in.
func TestConcurrentChanges(t *testing.T) {
	s := newServer(t, testConfig(t))
	q := query("web.acme.apps.enjin.test.", dns.TypeA)
	done := make(chan struct{})
	go func() { // ends after 200 changes
		defer close(done)
		for range 100 {
			s.SetApp("acme", "web")
			s.RemoveApp("acme", "web")
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		reply := serve(t, s, q, false)
		if rc := reply.Rcode; !(rc == dns.RcodeSuccess && len(reply.Answer) == 1 || rc == dns.RcodeNameError && len(reply.Answer) == 0) {
			t.Fatalf("mid-change reply: %v", reply)
		}
	}
}
