package dns_test

import (
	"testing"

	"github.com/miekg/dns"

	enjindns "enjin/services/dns"
)

// FuzzHandle feeds arbitrary bytes, once miekg/dns has unpacked them, to the handler over
// both transports. It must not panic, must answer with a message that packs, carries the
// request's id, and over UDP fits the size the request allows.
func FuzzHandle(f *testing.F) {
	// No logger: the server outlives each input's *testing.T.
	s := newServer(f, enjindns.Config{AppsDomain: "apps.enjin.test", RouterV4: routerV4, RouterV6: routerV6})
	s.SetApp("acme", "web")
	for _, m := range []*dns.Msg{
		query("web.acme.apps.enjin.test.", dns.TypeA),
		query("WEB.acme.apps.enjin.test.", dns.TypeANY),
		query("apps.enjin.test.", dns.TypeNS),
		query("x.y.web.acme.apps.enjin.test.", dns.TypeAAAA),
		query("example.com.", dns.TypeA),
		withOPT(query("apps.enjin.test.", dns.TypeSOA), 0, 4096, true),
		withOPT(query("web.acme.apps.enjin.test.", dns.TypeA), 3, 100, false),
		new(dns.Msg),
	} {
		b, err := m.Pack()
		if err != nil {
			f.Fatalf("pack seed: %v", err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(dns.Msg)
		if req.Unpack(data) != nil {
			return // the server drops or FORMERRs these before the handler sees them
		}
		for _, tcp := range []bool{false, true} {
			w := &recorder{tcp: tcp}
			s.ServeDNS(w, req)
			checkFuzzReply(t, req, w)
		}
	})
}

func checkFuzzReply(t *testing.T, req *dns.Msg, w *recorder) {
	if w.packErr != nil {
		t.Fatalf("reply does not pack: %v", w.packErr)
	}
	if w.writes == 0 {
		if !req.Response {
			t.Fatal("no reply to a request")
		}
		return
	}
	if w.writes > 1 {
		t.Fatalf("%d replies to one request", w.writes)
	}
	limit := dns.MaxMsgSize
	if !w.tcp {
		limit = dns.MinMsgSize
		if req.IsEdns0() != nil {
			limit = 1232
		}
	}
	if len(w.wire) > limit {
		t.Fatalf("reply of %d bytes, limit %d", len(w.wire), limit)
	}
	reply := new(dns.Msg)
	if err := reply.Unpack(w.wire); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	if reply.Id != req.Id || !reply.Response {
		t.Fatalf("reply id %d response %v, want id %d response true", reply.Id, reply.Response, req.Id)
	}
}
