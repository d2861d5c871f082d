package dhcpd_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"enjin/supervisors/dhcpd"
	"enjin/test/harness"
)

var id = os.Getpid() % 100000

// A network's DHCP server offers each MAC it knows exactly its address and says nothing to
// others; a change of its hosts is in force at once; Close leaves nothing.
func TestOffersOnlyAllocatedAddresses(t *testing.T) {
	host := fmt.Sprintf("enjdh-h-%d", id)
	harness.Netns(t, host, false)
	harness.Run(t, "ip", "-n", host, "link", "add", "br0", "type", "bridge")
	harness.Run(t, "ip", "-n", host, "link", "set", "br0", "up")
	vni := 7000 + id%1000
	dir, err := os.MkdirTemp("/tmp", "enjin-dhcpd-") // passable by nobody, as t.TempDir's parent is not
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o711)
	srv, err := dhcpd.Start(dhcpd.Config{VNI: vni, Bridge: "br0", HostNetns: host, Dir: dir,
		Server: netip.MustParsePrefix("100.77.0.254/24"), MAC: net.HardwareAddr{0x52, 0x54, 0, 0xdd, 0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	macs := []string{"52:54:00:aa:00:01", "52:54:00:aa:00:02", "52:54:00:aa:00:03"}
	var clients []string
	for i, m := range macs {
		ns := fmt.Sprintf("enjdh-c%d-%d", i, id)
		harness.Netns(t, ns, false)
		link := fmt.Sprintf("dc%d", i)
		harness.Run(t, "ip", "-n", host, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
		harness.Run(t, "ip", "-n", ns, "link", "set", "eth0", "address", m, "up")
		harness.Run(t, "ip", "-n", host, "link", "set", link, "master", "br0", "up")
		clients = append(clients, ns)
	}
	// First the first two; then the third as well, the first at another address, the second gone.
	for step, want := range []map[string]netip.Addr{
		{macs[0]: netip.MustParseAddr("100.77.0.2"), macs[1]: netip.MustParseAddr("100.77.0.3")},
		{macs[0]: netip.MustParseAddr("100.77.0.9"), macs[2]: netip.MustParseAddr("100.77.0.4")},
	} {
		if err := srv.SetHosts(want); err != nil {
			t.Fatal(err)
		}
		for i, m := range macs {
			got, ok := discover(t, clients[i], m)
			if w, known := want[m]; known && (!ok || got != w) || !known && ok {
				t.Fatalf("step %d: %s was offered %v (%t); want %v (known: %t)", step, m, got, ok, want[m], known)
			}
		}
	}
	t.Logf("3 MACs, 2 changes: each offered exactly its address, the unknown one nothing")
	// A server its run did not close is a leftover, found and stopped by the next.
	if got := dhcpd.Leftovers(dir); len(got) != 1 || got[0] != vni {
		t.Fatalf("leftovers %v, want [%d]", got, vni)
	}
	b, _ := os.ReadFile(fmt.Sprintf("%s/dnsmasq-%d.pid", dir, vni))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 1 {
		t.Fatalf("pid file: %q", b)
	}
	dhcpd.StopLeftover(dir, vni)
	if !harness.Poll(5*time.Second, func() bool { return syscall.Kill(pid, 0) != nil }) {
		t.Fatalf("the leftover server (pid %d) still runs", pid)
	}
	if out := harness.Run(t, "ip", "netns", "list"); strings.Contains(out, dhcpd.Namespace(vni)+" ") {
		t.Fatalf("the leftover's namespace is still there:\n%s", out)
	}
	if got := dhcpd.Leftovers(dir); len(got) != 0 {
		t.Fatalf("leftovers after stopping: %v", got)
	}
	if err := srv.SetHosts(map[string]netip.Addr{macs[0]: netip.MustParseAddr("100.78.0.1")}); err == nil {
		t.Fatal("an address outside the network was taken")
	}
	srv.Close()
	if out := harness.Run(t, "ip", "netns", "list"); bytes.Contains([]byte(out), []byte(dhcpd.Namespace(vni)+" ")) {
		t.Fatalf("namespace left:\n%s", out)
	}
}

// discover asks as a DHCP client does: a DHCPDISCOVER from mac in namespace ns, again after a
// second without an offer, three times in all. It returns the address offered, if one was.
func discover(t *testing.T, ns, mac string) (netip.Addr, bool) {
	t.Helper()
	for range 3 {
		if a, ok := discoverOnce(t, ns, mac); ok {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func discoverOnce(t *testing.T, ns, mac string) (netip.Addr, bool) {
	t.Helper()
	hw, _ := net.ParseMAC(mac)
	var conn net.PacketConn
	harness.InNetns(t, ns, func() {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
				if serr == nil {
					serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, "eth0")
				}
			})
			return serr
		}}
		var err error
		if conn, err = lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68"); err != nil {
			t.Fatal(err)
		}
	})
	defer conn.Close()
	xid := uint32(time.Now().UnixNano())
	p := make([]byte, 240)
	p[0], p[1], p[2] = 1, 1, 6 // request, Ethernet, 6-byte MAC
	binary.BigEndian.PutUint32(p[4:], xid)
	binary.BigEndian.PutUint16(p[10:], 0x8000) // answer by broadcast: no address yet
	copy(p[28:], hw)
	copy(p[236:], []byte{99, 130, 83, 99})
	p = append(p, 53, 1, 1, 255) // DHCPDISCOVER
	if _, err := conn.WriteTo(p, &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 1500)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return netip.Addr{}, false
		}
		if n >= 240 && buf[0] == 2 && binary.BigEndian.Uint32(buf[4:]) == xid && bytes.Equal(buf[28:34], hw) {
			return netip.AddrFrom4([4]byte(buf[16:20])), true
		}
	}
}

// On a network with an IPv6 /64, the server advertises the prefix: a port that configures
// nothing itself gets the prefix and its MAC's EUI-64 (the address ring 0 gave it), and no
// default route (the advertisement's router lifetime is 0). On a network without DHCP, that
// is all it does: it offers no address, even to a MAC it was told of.
func TestAdvertisesThePrefix(t *testing.T) {
	host := fmt.Sprintf("enjra-h-%d", id)
	harness.Netns(t, host, false)
	harness.Run(t, "ip", "-n", host, "link", "add", "br0", "type", "bridge")
	harness.Run(t, "ip", "-n", host, "link", "set", "br0", "up")
	vni := 8000 + id%1000
	dir, err := os.MkdirTemp("/tmp", "enjin-dhcpd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o711)
	if _, err := dhcpd.Start(dhcpd.Config{VNI: vni, Bridge: "br0", HostNetns: host, Dir: dir,
		Server: netip.MustParsePrefix("100.77.0.254/24"), Server6: netip.MustParsePrefix("fd00:77::1/48"),
		MAC: net.HardwareAddr{0x52, 0x54, 0, 0xdd, 0, 2}}); err == nil {
		t.Fatal("a /48 was taken for autoconfiguration")
	}
	srv, err := dhcpd.Start(dhcpd.Config{VNI: vni, Bridge: "br0", HostNetns: host, Dir: dir,
		Server: netip.MustParsePrefix("100.77.0.254/24"), Server6: netip.MustParsePrefix("fd00:77::5054:ff:fedd:2/64"),
		MAC: net.HardwareAddr{0x52, 0x54, 0, 0xdd, 0, 2}, NoDHCP: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ns := fmt.Sprintf("enjra-c-%d", id)
	harness.Netns(t, ns, true)
	harness.Run(t, "ip", "-n", host, "link", "add", "rc0", "type", "veth", "peer", "name", "eth0", "netns", ns)
	harness.Run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=1", "net.ipv6.conf.eth0.autoconf=1")
	harness.Run(t, "ip", "-n", ns, "link", "set", "eth0", "address", "52:54:00:aa:00:07", "up")
	harness.Run(t, "ip", "-n", host, "link", "set", "rc0", "master", "br0", "up")
	want := "fd00:77::5054:ff:feaa:7/64"
	var out string
	if !harness.Poll(20*time.Second, func() bool {
		out = harness.Run(t, "ip", "-n", ns, "-6", "addr", "show", "dev", "eth0")
		return strings.Contains(out, want)
	}) {
		t.Fatalf("no %s from the advertised prefix:\n%s", want, out)
	}
	if r := harness.Run(t, "ip", "-n", ns, "-6", "route", "show", "default"); strings.TrimSpace(r) != "" {
		t.Fatalf("the advertisement made a default route: %s", r)
	}
	if err := srv.SetHosts(map[string]netip.Addr{"52:54:00:aa:00:07": netip.MustParseAddr("100.77.0.7")}); err != nil {
		t.Fatal(err)
	}
	if a, ok := discover(t, ns, "52:54:00:aa:00:07"); ok {
		t.Fatalf("a server of a network without DHCP offered %v", a)
	}
	t.Logf("the prefix advertised: the port took %s, and no default route; no DHCP offer", want)
}
