package broker

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Route ports come from outside the kernel's ephemeral range, are free when returned, and
// skip is honoured.
func TestFreePortAvoidsTheEphemeralRange(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	eLo, _ := strconv.Atoi(f[0])
	eHi, _ := strconv.Atoi(f[1])
	seen := map[int]bool{}
	for range 200 {
		p, err := FreePort(func(p int) bool { return seen[p] })
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d returned twice though skipped", p)
		}
		seen[p] = true
		if p >= eLo && p <= eHi {
			t.Fatalf("port %d is inside the ephemeral range %d-%d", p, eLo, eHi)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d not free: %v", p, err)
		}
		l.Close()
	}
	// A port in use is never returned.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if bindable(l.Addr().(*net.TCPAddr).Port) {
		t.Fatal("a port with a listener counts as free")
	}
	t.Logf("200 ports outside %d-%d, all free, none twice", eLo, eHi)
}
