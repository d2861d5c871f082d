package vmhost

import (
	"net/netip"
	"slices"
	"testing"

	"enjin"
	"enjin/supervisors/netseg"
)

// A VM's NIC on a network with NAT is guarded as a way out through the gateway: its MAC the
// segment's gateway's, and the segment's peers and the cloud's hosts out of its reach;
// a segment whose gateway or protected addresses are not ones to realize is refused.
func TestNICOnNATNetwork(t *testing.T) {
	seg := &enjin.Segment{VNI: 4242, Port: "0b9f5c1e-8a52-4e53-9d0e-5d1e2f3a4b5c", Addresses: []string{"100.79.0.2/24"},
		Gateway: "100.79.0.1", NAT: true, Peers: []string{"198.19.1.3"}, Protected: []string{"198.19.1.1", "198.19.1.4"}}
	nic := enjin.VMNIC{MAC: "52:54:00:12:34:56", Network: "wan", Segment: seg}
	if err := checkSegment(nic.MAC, seg); err != nil {
		t.Fatal(err)
	}
	h := &Host{}
	p := h.guarded(nic)
	if !slices.Equal(p.Gateway, netseg.GatewayMAC(4242)) {
		t.Fatalf("gateway MAC %v, want %v", p.Gateway, netseg.GatewayMAC(4242))
	}
	for _, a := range []string{"198.19.1.3", "198.19.1.1", "198.19.1.4"} {
		if !slices.Contains(p.Protected, netip.MustParseAddr(a)) {
			t.Errorf("%s not protected: %v", a, p.Protected)
		}
	}
	if gw, err := seg.NATGateway(); err != nil || gw != netip.MustParsePrefix("100.79.0.1/24") {
		t.Fatalf("gateway %v %v", gw, err)
	}
	off := *seg
	off.NAT = false
	if p := h.guarded(enjin.VMNIC{MAC: nic.MAC, Network: "lan", Segment: &off}); p.Gateway != nil || p.Protected != nil {
		t.Fatalf("a NIC on a network without NAT has a gateway: %+v", p)
	}
	for _, bad := range []func(s *enjin.Segment){
		func(s *enjin.Segment) { s.Gateway = "100.80.0.1" },            // outside the port's block
		func(s *enjin.Segment) { s.Gateway = "fd00::1" },               // not IPv4
		func(s *enjin.Segment) { s.Protected = []string{"not-an-ip"} }, // nonsense
		func(s *enjin.Segment) { s.Protected = []string{"fd00::2"} },
	} {
		s := *seg
		bad(&s)
		if err := checkSegment(nic.MAC, &s); err == nil {
			t.Errorf("segment %+v accepted", s)
		}
	}
}
