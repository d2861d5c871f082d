package netseg

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Announce says, from inside network namespace ns, that link (with hardware address mac) has
// addrs now: a gratuitous ARP for each IPv4 address and an unsolicited, overriding neighbour
// advertisement for each IPv6 one, to every node of the segment. An address that was another
// port's a moment ago is then this one's at once for the neighbours that knew the other,
// instead of once their entries time out. (The kernel's own arp_notify sends when the link
// comes up, which a veth's first frames do not always survive.)
//
// ns "" is the caller's own namespace (a guest announcing its NICs).
func Announce(ns, link string, mac net.HardwareAddr, addrs []netip.Addr) error {
	in := InNamespace
	if ns == "" {
		in = func(_ string, f func() error) error { return f() }
	}
	return in(ns, func() error {
		ifi, err := net.InterfaceByName(link)
		if err != nil {
			return fmt.Errorf("netseg: announce on %s: %w", link, err)
		}
		for _, a := range addrs {
			if a.Is4() {
				err = garp(ifi.Index, mac, a)
			} else {
				err = unsolicitedNA(ifi.Index, mac, a)
			}
			if err != nil {
				return fmt.Errorf("netseg: announce %v on %s: %w", a, link, err)
			}
		}
		return nil
	})
}

// garp sends an ARP request for a from a itself, to everyone.
func garp(ifindex int, mac net.HardwareAddr, a netip.Addr) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ip := a.As4()
	f := make([]byte, 0, 42)
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	f = append(f, mac...)
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_ARP)
	f = append(f, 0, 1, 8, 0, 6, 4, 0, 1) // Ethernet, IPv4, lengths, request
	f = append(append(f, mac...), ip[:]...)
	f = append(append(f, 0, 0, 0, 0, 0, 0), ip[:]...)
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifindex, Halen: 6}
	copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	return unix.Sendto(fd, f, 0, to)
}

// unsolicitedNA sends a neighbour advertisement for a, from a, overriding, to all nodes.
func unsolicitedNA(ifindex int, mac net.HardwareAddr, a netip.Addr) error {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// Neighbour discovery is believed only from hop limit 255; the kernel fills in the checksum.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
		return err
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex); err != nil {
		return err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: a.As16(), ZoneId: uint32(ifindex)}); err != nil {
		return err
	}
	target := a.As16()
	m := []byte{136, 0, 0, 0, 0x20, 0, 0, 0} // advertisement; override, neither router nor solicited
	m = append(m, target[:]...)
	m = append(append(m, 2, 1), mac...) // the target's link-layer address
	to := &unix.SockaddrInet6{Addr: netip.MustParseAddr("ff02::1").As16(), ZoneId: uint32(ifindex)}
	return unix.Sendto(fd, m, 0, to)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
