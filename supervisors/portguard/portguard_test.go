package portguard_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"enjin/supervisors/portguard"
	"enjin/test/harness"
)

var id = os.Getpid() % 100000

var (
	macAttacker = net.HardwareAddr{0x52, 0x54, 0x00, 0xaa, 0x00, 0x01}
	macVictim   = net.HardwareAddr{0x52, 0x54, 0x00, 0xaa, 0x00, 0x02}
	macOther    = net.HardwareAddr{0x52, 0x54, 0x00, 0xbb, 0x00, 0x09}
	broadcast   = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allNodes6   = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	ipAttacker  = netip.MustParseAddr("100.77.0.2")
	ipVictim    = netip.MustParseAddr("100.77.0.3")
	ip6Attacker = netip.MustParseAddr("fd00:77::2")
	llAttacker  = portguard.LinkLocal(macAttacker)
	llRouter    = netip.MustParseAddr("fe80::1")
	allNodes    = netip.MustParseAddr("ff02::1")
)

// A network's bridge with two guarded ports in namespaces of their own. The attacker, with
// raw sockets, forges every kind of frame a port must not send — another MAC, other
// addresses, ARP replies, router advertisements, neighbour advertisements for others'
// addresses, DHCP offers, VLAN tags, IPv6 extension headers — first unguarded (they arrive:
// the test can see them) and then guarded: none arrives, while its honest frames and a TCP
// connection between the two still do, and nothing from a port reaches the host.
func TestSpoofedFramesAreDropped(t *testing.T) {
	host := fmt.Sprintf("enjpg-h-%d", id)
	harness.Netns(t, host, false)
	harness.Run(t, "ip", "-n", host, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	harness.Run(t, "ip", "-n", host, "addr", "add", "100.77.0.1/24", "dev", "br0")
	harness.Run(t, "ip", "-n", host, "link", "set", "br0", "up")
	g := portguard.New(fmt.Sprintf("enjin-ports-t%d", id), host)
	t.Cleanup(func() { g.Close() })

	// The attacker's port is guarded before it exists, as a VM's tap is before the VM starts.
	attackerPort := portguard.Port{Link: "etatk", MAC: macAttacker, Addresses: []netip.Addr{ipAttacker, ip6Attacker}}
	victimPort := portguard.Port{Link: "etvic", MAC: macVictim, Addresses: []netip.Addr{ipVictim}}
	attacker := endpoint(t, host, "atk", attackerPort, "100.77.0.2/24")
	victim := endpoint(t, host, "vic", victimPort, "100.77.0.3/24")

	rx := capture(t, victim)
	tx := rawSocket(t, attacker)

	// Unguarded, every forgery arrives: what the guard stops is there to stop.
	for k := range spoofs {
		for seq := range 5 {
			send(t, tx, k, seq)
		}
	}
	sendControls(t, tx, 5)
	rx.waitControls(t, 5)
	for k, f := range spoofs {
		if got := rx.countSpoof(k); got != 5 {
			t.Fatalf("unguarded: %s: %d of 5 arrived", f.what, got)
		}
	}

	for _, p := range []portguard.Port{attackerPort, victimPort} {
		if err := g.Set(p); err != nil {
			t.Fatal(err)
		}
	}
	rx.reset()
	const per = 100
	sent := 0
	for k := range spoofs {
		for seq := range per {
			send(t, tx, k, seq)
			sent++
		}
	}
	sendControls(t, tx, per)
	rx.waitControls(t, per)
	delivered := 0
	for k, f := range spoofs {
		if n := rx.countSpoof(k); n != 0 {
			t.Errorf("guarded: %s: %d of %d arrived", f.what, n, per)
		}
		delivered += rx.countSpoof(k)
	}
	t.Logf("spoofing: %d forged frames of %d kinds sent, %d delivered; %d honest frames of %d kinds sent, all delivered",
		sent, len(spoofs), delivered, per*len(controls), len(controls))
	if sent < 1000 {
		t.Fatalf("only %d forged frames sent", sent)
	}

	// Honest traffic between the two flows (ARP included); the host is out of reach.
	harness.ServeName(t, victim, "100.77.0.3:7000")
	if got, err := harness.AskName(t, attacker, "100.77.0.3:7000"); got != victim {
		t.Fatalf("attacker to victim, honestly: %q %v", got, err)
	}
	harness.ServeName(t, host, "100.77.0.1:7001")
	if got, err := harness.AskName(t, attacker, "100.77.0.1:7001"); err == nil {
		t.Fatalf("a guarded port reached the host: %q", got)
	}
	if got, err := harness.AskName(t, victim, "100.77.0.1:7001"); err == nil {
		t.Fatalf("a guarded port reached the host: %q", got)
	}

	// The network's server port advertises the prefix from its own link-local address; no
	// one's link-local but its own, even so.
	server := attackerPort
	server.DHCPServer = true
	if err := g.Set(server); err != nil {
		t.Fatal(err)
	}
	rx.reset()
	ownRA, otherRA := spoofKind(t, "router advertisement from its own link-local"), spoofKind(t, "router advertisement from a router's address")
	for seq := range 5 {
		send(t, tx, ownRA, seq)
		send(t, tx, otherRA, seq)
	}
	harness.Eventually(t, 5*time.Second, func() bool { return rx.countSpoof(ownRA) == 5 }, "the server port's advertisements")
	if n := rx.countSpoof(otherRA); n != 0 {
		t.Fatalf("the server port advertised from a router's address: %d of 5 arrived", n)
	}
	// A router's port carries others' packets: IP from any address, yet its MAC and what it
	// claims in ARP and neighbour advertisements stay its own.
	router := attackerPort
	router.Forward = true
	if err := g.Set(router); err != nil {
		t.Fatal(err)
	}
	rx.reset()
	carried := []int{spoofKind(t, "another IPv4 source"), spoofKind(t, "another IPv6 source")}
	still := []int{spoofKind(t, "another source MAC"), spoofKind(t, "ARP reply claiming another's address"),
		spoofKind(t, "neighbour advertisement for another's address"), spoofKind(t, "router advertisement from its own link-local")}
	for seq := range 5 {
		for _, k := range append(slices.Clone(carried), still...) {
			send(t, tx, k, seq)
		}
	}
	for _, k := range carried {
		harness.Eventually(t, 5*time.Second, func() bool { return rx.countSpoof(k) == 5 }, "a router's port carrying %s", spoofs[k].what)
	}
	for _, k := range still {
		if n := rx.countSpoof(k); n != 0 {
			t.Fatalf("a router's port sent %s: %d of 5 arrived", spoofs[k].what, n)
		}
	}
	if err := g.Set(attackerPort); err != nil {
		t.Fatal(err)
	}

	// Changing one port's addresses changes what it may send, and nothing else.
	if err := g.Set(portguard.Port{Link: "etatk", MAC: macAttacker, Addresses: []netip.Addr{netip.MustParseAddr("100.77.0.9")}}); err != nil {
		t.Fatal(err)
	}
	rx.reset()
	for seq := range 3 {
		write(t, tx, controls[0].frame(marker{0, uint16(seq)})) // from its old address
		write(t, tx, controls[1].frame(marker{1, uint16(seq)})) // from its link-local: still its own
	}
	harness.Eventually(t, 5*time.Second, func() bool { return rx.count(1) == 3 }, "link-local frames after the change")
	if n := rx.count(0); n != 0 {
		t.Fatalf("the attacker's old address still sends: %d of 3 frames arrived", n)
	}
	if err := g.Remove("etatk"); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove("etatk"); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	for _, bad := range []portguard.Port{{Link: "eth0; drop", MAC: macOther}, {Link: "x", MAC: broadcast},
		{Link: "x", MAC: macOther, Addresses: []netip.Addr{netip.MustParseAddr("ff02::1")}}, {Link: "x"}} {
		if err := g.Set(bad); !errors.Is(err, portguard.ErrInvalid) {
			t.Errorf("Set(%+v): %v, want ErrInvalid", bad, err)
		}
	}
	if out := harness.Run(t, "ip", "netns", "exec", host, "nft", "list", "table", "bridge", g.Table); strings.Contains(out, "etatk") {
		t.Fatalf("a removed port keeps rules:\n%s", out)
	}
}

// endpoint makes namespace role with eth0 at addr, its host side link on host's br0, guarded
// as p, and returns the namespace's name.
func endpoint(t *testing.T, host, role string, p portguard.Port, addr string) string {
	t.Helper()
	ns := fmt.Sprintf("enjpg-%s-%d", role, id)
	harness.Netns(t, ns, false)
	harness.Run(t, "ip", "-n", host, "link", "add", p.Link, "type", "veth", "peer", "name", "eth0", "netns", ns)
	harness.Run(t, "ip", "-n", ns, "link", "set", "eth0", "address", p.MAC.String())
	harness.Run(t, "ip", "-n", host, "link", "set", p.Link, "master", "br0", "up")
	harness.Run(t, "ip", "-n", ns, "addr", "add", addr, "dev", "eth0")
	harness.Run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	return ns
}

func rawSocket(t *testing.T, ns string) int {
	t.Helper()
	var fd int
	var err error
	harness.InNetns(t, ns, func() {
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL))); err != nil {
			return
		}
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName("eth0"); err != nil {
			return
		}
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// marker ends every test frame, in its payload or its padding: "ENJSPOOF", the kind, a number.
type marker struct {
	kind byte
	seq  uint16
}

func (m marker) bytes() []byte {
	return binary.BigEndian.AppendUint16(append([]byte("ENJSPOOF"), m.kind), m.seq)
}

// receiver counts the marked frames that arrive on a namespace's eth0, by kind.
type receiver struct {
	mu     sync.Mutex
	counts map[byte]int
}

func capture(t *testing.T, ns string) *receiver {
	t.Helper()
	fd := rawSocket(t, ns)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	r := &receiver{counts: map[byte]int{}}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() { // ends with the test
		buf := make([]byte, 2048)
		for {
			select {
			case <-done:
				return
			default:
			}
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			if i := strings.Index(string(buf[:n]), "ENJSPOOF"); i >= 0 && i+9 <= n {
				r.mu.Lock()
				r.counts[buf[i+8]]++
				r.mu.Unlock()
			}
		}
	}()
	return r
}

func (r *receiver) count(k byte) int { r.mu.Lock(); defer r.mu.Unlock(); return r.counts[k] }
func (r *receiver) reset()           { r.mu.Lock(); defer r.mu.Unlock(); clear(r.counts) }

// waitControls waits until n of every honest kind have arrived: frames on one path arrive in
// order, so every forgery sent before them has arrived too, or never will.
func (r *receiver) waitControls(t *testing.T, n int) {
	t.Helper()
	harness.Eventually(t, 10*time.Second, func() bool {
		for k := range controls {
			if r.count(byte(k)) < n {
				return false
			}
		}
		return true
	}, "honest frames did not all arrive: %v", r.snapshot())
}

func sendControls(t *testing.T, fd, n int) {
	t.Helper()
	for seq := range n {
		for k := range controls {
			write(t, fd, controls[k].frame(marker{byte(k), uint16(seq)}))
		}
	}
}

// send sends forgery k, numbered seq.
func send(t *testing.T, fd, k, seq int) {
	t.Helper()
	write(t, fd, spoofs[k].frame(marker{byte(k) + spoofBase, uint16(seq)}))
}

// written counts the frames sent, for pacing.
var written int

// write sends one frame, pausing a moment every 32: a raw socket outruns the kernel's
// per-CPU receive backlog (1,000 frames), which would drop honest frames too.
func write(t *testing.T, fd int, frame []byte) {
	t.Helper()
	if written++; written%32 == 0 {
		time.Sleep(time.Millisecond)
	}
	if len(frame) < 60 {
		frame = append(frame, make([]byte, 60-len(frame))...)
	}
	if _, err := unix.Write(fd, frame); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func (r *receiver) countSpoof(k int) int { return r.count(byte(k) + spoofBase) }

type frameKind struct {
	what  string
	frame func(marker) []byte
}

const spoofBase = 100

// controls are what an honest port sends; each must arrive.
var controls = []frameKind{
	{"IPv4 from its own MAC and address", func(m marker) []byte {
		return eth(broadcast, macAttacker, 0x0800, ipv4(ipAttacker, netip.MustParseAddr("100.77.0.255"), 17, udp(5000, 5000, m.bytes())))
	}},
	{"IPv6 from its own link-local address", func(m marker) []byte {
		return eth(allNodes6, macAttacker, 0x86dd, ipv6(llAttacker, allNodes, 17, udp(5000, 5000, m.bytes())))
	}},
	{"ARP request for its own address", func(m marker) []byte {
		return eth(broadcast, macAttacker, 0x0806, append(arp(1, macAttacker, ipAttacker, ipVictim), m.bytes()...))
	}},
}

// spoofKind is the index in spoofs of the kind described as what.
func spoofKind(t *testing.T, what string) int {
	for k, f := range spoofs {
		if f.what == what {
			return k
		}
	}
	t.Fatalf("no spoof kind %q", what)
	return 0
}

// spoofs are what no port may send.
var spoofs = []frameKind{
	{"another source MAC", func(m marker) []byte {
		return eth(broadcast, macOther, 0x0800, ipv4(ipAttacker, ipVictim, 17, udp(5000, 5000, m.bytes())))
	}},
	{"another IPv4 source", func(m marker) []byte {
		return eth(broadcast, macAttacker, 0x0800, ipv4(netip.MustParseAddr("100.77.0.1"), ipVictim, 17, udp(5000, 5000, m.bytes())))
	}},
	{"ARP reply claiming another's address", func(m marker) []byte {
		return eth(broadcast, macAttacker, 0x0806, append(arp(2, macAttacker, netip.MustParseAddr("100.77.0.1"), ipVictim), m.bytes()...))
	}},
	{"ARP with another sender MAC", func(m marker) []byte {
		return eth(broadcast, macAttacker, 0x0806, append(arp(2, macOther, ipAttacker, ipVictim), m.bytes()...))
	}},
	{"another IPv6 source", func(m marker) []byte {
		return eth(allNodes6, macAttacker, 0x86dd, ipv6(netip.MustParseAddr("fd00:77::99"), allNodes, 17, udp(5000, 5000, m.bytes())))
	}},
	{"router advertisement from its own link-local", func(m marker) []byte {
		return eth(allNodes6, macAttacker, 0x86dd, ipv6(llAttacker, allNodes, 58, icmp6(134, append(make([]byte, 12), m.bytes()...))))
	}},
	{"router advertisement from a router's address", func(m marker) []byte {
		return eth(allNodes6, macAttacker, 0x86dd, ipv6(llRouter, allNodes, 58, icmp6(134, append(make([]byte, 12), m.bytes()...))))
	}},
	{"router advertisement behind a hop-by-hop header", func(m marker) []byte {
		hbh := []byte{58, 0, 5, 2, 0, 0, 1, 0} // next: ICMPv6; router alert; PadN
		return eth(allNodes6, macAttacker, 0x86dd, ipv6(llAttacker, allNodes, 0, append(hbh, icmp6(134, append(make([]byte, 12), m.bytes()...))...)))
	}},
	{"neighbour advertisement for another's address", func(m marker) []byte {
		target := netip.MustParseAddr("fd00:77::3").As16()
		return eth(allNodes6, macAttacker, 0x86dd, ipv6(llAttacker, allNodes, 58, icmp6(136, append(append([]byte{0x20, 0, 0, 0}, target[:]...), m.bytes()...))))
	}},
	{"DHCP offer", func(m marker) []byte {
		return eth(broadcast, macAttacker, 0x0800, ipv4(ipAttacker, netip.MustParseAddr("255.255.255.255"), 17, udp(67, 68, m.bytes())))
	}},
	{"DHCPv6 advertise", func(m marker) []byte {
		return eth(allNodes6, macAttacker, 0x86dd, ipv6(llAttacker, allNodes, 17, udp(547, 546, m.bytes())))
	}},
	{"VLAN-tagged IPv4", func(m marker) []byte {
		inner := binary.BigEndian.AppendUint16([]byte{0, 7}, 0x0800)
		return eth(broadcast, macAttacker, 0x8100, append(inner, ipv4(ipAttacker, ipVictim, 17, udp(5000, 5000, m.bytes()))...))
	}},
	{"another ethertype", func(m marker) []byte { return eth(broadcast, macAttacker, 0x88b5, m.bytes()) }},
}

func eth(dst, src net.HardwareAddr, typ uint16, payload []byte) []byte {
	b := slices.Concat([]byte(dst), []byte(src))
	return append(binary.BigEndian.AppendUint16(b, typ), payload...)
}

func ipv4(src, dst netip.Addr, proto byte, payload []byte) []byte {
	h := []byte{0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0}
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	s, d := src.As4(), dst.As4()
	h = slices.Concat(h, s[:], d[:])
	// The header's checksum: a bridge that hands IPv4 to netfilter drops frames without one.
	var sum uint32
	for i := 0; i < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
	return append(h, payload...)
}

func udp(sport, dport uint16, data []byte) []byte {
	h := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, sport), dport)
	h = binary.BigEndian.AppendUint16(h, uint16(8+len(data)))
	return append(append(h, 0, 0), data...)
}

func ipv6(src, dst netip.Addr, next byte, payload []byte) []byte {
	h := []byte{0x60, 0, 0, 0}
	h = binary.BigEndian.AppendUint16(h, uint16(len(payload)))
	h = append(h, next, 255)
	s, d := src.As16(), dst.As16()
	return slices.Concat(h, s[:], d[:], payload)
}

func icmp6(typ byte, body []byte) []byte { return append([]byte{typ, 0, 0, 0}, body...) }

func arp(op uint16, sha net.HardwareAddr, spa, tpa netip.Addr) []byte {
	b := []byte{0, 1, 8, 0, 6, 4}
	b = binary.BigEndian.AppendUint16(b, op)
	s, d := spa.As4(), tpa.As4()
	return slices.Concat(b, []byte(sha), s[:], make([]byte, 6), d[:])
}

func (r *receiver) snapshot() map[byte]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.counts)
}
