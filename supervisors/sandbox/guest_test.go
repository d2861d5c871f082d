package sandbox_test

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"enjin/supervisors/sandbox"
)

// A child on the bridge reaches the gateway's guest port only while AllowGuest lets its
// address in, the host port only while AllowHost does too, and never any other port;
// reserved addresses are never handed to a child.
func TestGuestPortAndReservedAddresses(t *testing.T) {
	n := time.Now().UnixNano()%200 + 20
	nw := &sandbox.Network{Bridge: fmt.Sprintf("enjg%d", n), Prefix: netip.MustParsePrefix(fmt.Sprintf("100.99.%d.0/29", n))}
	if err := nw.Ensure(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", nw.Bridge).Run() })
	if err := nw.Firewall(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.RemoveFirewall() })
	reserved, err := nw.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	ep, err := nw.Attach("g1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	if ep.Addr == reserved {
		t.Fatalf("a child got the reserved address %v", reserved)
	}
	if err := nw.ReserveAddr(ep.Addr); err == nil {
		t.Fatalf("ReserveAddr took %v, which a child has", ep.Addr)
	}
	gw := nw.Gateway().String()
	guest, _ := net.Listen("tcp", net.JoinHostPort(gw, strconv.Itoa(sandbox.GuestPort)))
	host, _ := net.Listen("tcp", net.JoinHostPort(gw, strconv.Itoa(sandbox.HostPort)))
	other, _ := net.Listen("tcp", net.JoinHostPort(gw, "0"))
	if guest == nil || host == nil || other == nil {
		t.Fatal("listeners on the gateway")
	}
	defer guest.Close()
	defer host.Close()
	defer other.Close()
	for _, l := range []net.Listener{guest, host, other} {
		go func() { // ends when l closes
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	dial := func(port int) bool {
		cmd := exec.Command("ip", "netns", "exec", filepath.Base(ep.Netns), "bash", "-c",
			fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", gw, port))
		return cmd.Run() == nil
	}
	otherPort := other.Addr().(*net.TCPAddr).Port
	if dial(sandbox.GuestPort) || dial(sandbox.HostPort) || dial(otherPort) {
		t.Fatal("a child reached the gateway before AllowGuest")
	}
	if err := nw.AllowHost(ep.Addr); err != nil {
		t.Fatal(err)
	}
	if !dial(sandbox.HostPort) || dial(sandbox.GuestPort) {
		t.Fatal("AllowHost: want the host port reached, and not the guest port")
	}
	if err := nw.DisallowHost(ep.Addr); err != nil {
		t.Fatal(err)
	}
	if dial(sandbox.HostPort) {
		t.Fatal("a disallowed host still reaches the host port")
	}
	if err := nw.AllowGuest(ep.Addr); err != nil {
		t.Fatal(err)
	}
	if !dial(sandbox.GuestPort) {
		t.Fatal("an allowed guest cannot reach the guest port")
	}
	if dial(otherPort) || dial(sandbox.HostPort) {
		t.Fatal("an allowed guest reached another port of the gateway, or the host port")
	}
	if err := nw.DisallowGuest(ep.Addr); err != nil {
		t.Fatal(err)
	}
	if dial(sandbox.GuestPort) {
		t.Fatal("a disallowed guest still reaches the guest port")
	}
	nw.Release(reserved)
	if err := nw.ReserveAddr(reserved); err != nil {
		t.Fatalf("a released address could not be reserved again: %v", err)
	}
}
