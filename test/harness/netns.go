package harness

import (
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"enjin/supervisors/netseg"
)

// Run runs a command line (ip(8), nft(8), …) and fails the test if it fails; it returns what
// the command printed.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Netns makes network namespace name for the test (removed when it ends), with lo up and
// IPv6 off unless ipv6, and a netlink handle into it.
func Netns(t testing.TB, name string, ipv6 bool) *netlink.Handle {
	t.Helper()
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	if !ipv6 { // its autoconfiguration chatter would blur counts of frames
		Run(t, "ip", "netns", "exec", name, "sh", "-c",
			"echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6")
	}
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// InNetns runs f on a thread in network namespace name: the sockets f makes are that
// namespace's, and stay so after f returns.
func InNetns(t testing.TB, name string, f func()) {
	t.Helper()
	if err := netseg.InNamespace(name, func() error { f(); return nil }); err != nil {
		t.Fatal(err)
	}
}

// ServeName answers every TCP connection to addr in namespace ns with ns's name, until the
// test ends.
func ServeName(t testing.TB, ns, addr string) {
	t.Helper()
	serve(t, ns, addr, func(net.Conn) string { return ns })
}

// ServeRemote answers each connection to addr, in namespace ns, with the address it came
// from: where a NAT shows.
func ServeRemote(t testing.TB, ns, addr string) {
	t.Helper()
	serve(t, ns, addr, func(c net.Conn) string {
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		return host
	})
}

// serve answers each TCP connection to addr in namespace ns with what answer says, and
// closes it, until the test ends.
func serve(t testing.TB, ns, addr string, answer func(net.Conn) string) {
	t.Helper()
	var ln net.Listener
	var err error
	InNetns(t, ns, func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { // ends when the listener closes
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, answer(c))
			c.Close()
		}
	}()
}

// AskName connects from namespace ns to addr and returns what the server there says.
func AskName(t testing.TB, ns, addr string) (string, error) {
	t.Helper()
	var c net.Conn
	var err error
	InNetns(t, ns, func() { c, err = net.DialTimeout("tcp", addr, time.Second) })
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}
