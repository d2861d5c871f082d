package broker

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// FreePort returns a loopback port that was free for TCP and UDP a moment ago and for which
// skip, if set, is false: for a route listener whose port the other members must know before
// it starts. It is drawn below the kernel's ephemeral range, where the source ports of
// outgoing connections and the ports of listeners on port 0 come from: a port from inside it
// may be taken by any of those before the listener binds it — or by a connection to the port
// itself, which, with nothing listening yet, connects to itself (TCP's simultaneous open).
func FreePort(skip func(int) bool) (int, error) {
	lo, hi := portRange()
	for range 10000 {
		p := lo + rand.IntN(hi-lo)
		if (skip == nil || !skip(p)) && bindable(p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("broker: no free loopback port in [%d, %d)", lo, hi)
}

// bindable reports whether 127.0.0.1:p is free for both TCP and UDP.
func bindable(p int) bool {
	addr := "127.0.0.1:" + strconv.Itoa(p)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// portRange is where FreePort draws from: [20000, the ephemeral range's start), or the ports
// above its end when there is no room below it.
func portRange() (lo, hi int) {
	eLo, eHi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, errA := strconv.Atoi(f[0])
			z, errZ := strconv.Atoi(f[1])
			if errA == nil && errZ == nil && a <= z {
				eLo, eHi = a, z
			}
		}
	}
	switch {
	case eLo-20000 >= 4096:
		return 20000, eLo
	case 65535-eHi >= 4096:
		return eHi + 1, 65536
	}
	return 1024, 65536 // no room outside it: take what is free
}
