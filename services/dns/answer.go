package dns

import (
	"net"

	"github.com/miekg/dns"
)

// ednsSize is the UDP payload we advertise and the most we send over UDP: the DNS flag day
// 2020 value, which avoids IP fragmentation on common paths.
const ednsSize = 1232

// ServeDNS answers one request. It copes with any message miekg/dns can unpack, including
// ones the server's accept function would have rejected, and never panics (a panic would be
// recovered and logged, the query left unanswered).
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	defer func() { // a bug meeting a hostile query costs that query, not the node
		if v := recover(); v != nil {
			s.log.Error("dns: recovered from a panic", "remote", w.RemoteAddr(), "panic", v)
		}
	}()
	if r == nil || r.Response {
		return // answering a response invites loops and reflection
	}
	m := s.answer(r)
	if m == nil {
		return
	}
	if isUDP(w) {
		m.Truncate(udpLimit(r))
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns: write answer", "remote", w.RemoteAddr(), "err", err)
	}
}

// answer builds the reply to r.
func (s *Server) answer(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.Id, m.Response, m.Opcode = r.Id, true, r.Opcode
	if r.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	m.RecursionDesired, m.CheckingDisabled = r.RecursionDesired, r.CheckingDisabled
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	m.Question = []dns.Question{r.Question[0]}
	opt, rcode := requestOPT(r)
	if rcode != dns.RcodeSuccess {
		m.Rcode = rcode // a malformed OPT earns no OPT in return
		return m
	}
	if opt != nil {
		m.SetEdns0(ednsSize, opt.Do())
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers // carried by our OPT's extended rcode
			return m
		}
	}
	s.resolve(m, r.Question[0])
	return m
}

// requestOPT returns r's OPT record, if any, or FORMERR if it has more than one.
func requestOPT(r *dns.Msg) (*dns.OPT, int) {
	var opt *dns.OPT
	for _, rr := range r.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil {
				return nil, dns.RcodeFormatError
			}
			opt = o
		}
	}
	return opt, dns.RcodeSuccess
}

// resolve fills m's rcode and sections for question q.
func (s *Server) resolve(m *dns.Msg, q dns.Question) {
	if q.Qclass != dns.ClassINET {
		m.Rcode = dns.RcodeRefused
		return
	}
	z := s.zone.Load() // one snapshot per answer, so the SOA serial matches it
	k := z.classify(s.origin, dns.CanonicalName(q.Name))
	if k == outside {
		m.Rcode = dns.RcodeRefused
		return
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		m.Rcode = dns.RcodeRefused // no zone transfers: there are no secondaries
		return
	}
	m.Authoritative = true
	switch k {
	case missing:
		m.Rcode = dns.RcodeNameError
	case apex:
		m.Answer = s.apexRecords(q, z.serial)
	case host:
		m.Answer = s.hostRecords(q)
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{s.soa(s.origin, z.serial)}
	} else if k == apex && q.Qtype == dns.TypeNS {
		m.Extra = append(s.addresses(s.nsName(), dns.TypeANY), m.Extra...) // glue
	}
}

// apexRecords answers q at the apex: SOA, NS or both for ANY.
func (s *Server) apexRecords(q dns.Question, serial uint32) []dns.RR {
	var rrs []dns.RR
	if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
		rrs = append(rrs, s.soa(q.Name, serial))
	}
	if q.Qtype == dns.TypeNS || q.Qtype == dns.TypeANY {
		rrs = append(rrs, &dns.NS{Hdr: s.hdr(q.Name, dns.TypeNS), Ns: s.nsName()})
	}
	return rrs
}

// hostRecords answers q at an app or the name server: A, AAAA or both for ANY.
func (s *Server) hostRecords(q dns.Question) []dns.RR {
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		return s.addresses(q.Name, q.Qtype)
	}
	return nil
}

// addresses returns name's A (qtype A or ANY) and AAAA (qtype AAAA or ANY) records.
func (s *Server) addresses(name string, qtype uint16) []dns.RR {
	var rrs []dns.RR
	if qtype == dns.TypeA || qtype == dns.TypeANY {
		rrs = append(rrs, &dns.A{Hdr: s.hdr(name, dns.TypeA), A: s.v4})
	}
	if s.v6 != nil && (qtype == dns.TypeAAAA || qtype == dns.TypeANY) {
		rrs = append(rrs, &dns.AAAA{Hdr: s.hdr(name, dns.TypeAAAA), AAAA: s.v6})
	}
	return rrs
}

// soa returns the zone's SOA record under the given spelling of the apex.
func (s *Server) soa(name string, serial uint32) dns.RR {
	return &dns.SOA{
		Hdr:     s.hdr(name, dns.TypeSOA),
		Ns:      s.nsName(),
		Mbox:    "hostmaster." + s.origin,
		Serial:  serial,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  s.ttl,
	}
}

func (s *Server) nsName() string { return nsLabel + "." + s.origin }

func (s *Server) hdr(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: s.ttl}
}

// udpLimit is the largest UDP answer r's sender can take, capped at what we advertise.
func udpLimit(r *dns.Msg) int {
	opt := r.IsEdns0()
	if opt == nil {
		return dns.MinMsgSize
	}
	return min(max(int(opt.UDPSize()), dns.MinMsgSize), ednsSize)
}

func isUDP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.UDPAddr)
	return ok
}
