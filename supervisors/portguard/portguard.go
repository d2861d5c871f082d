// Package portguard keeps the ports of tenant networks honest, enforces their rule sets and
// holds the NAT gateway to what it may do (nat.go): a port (a VM's tap, an app
// instance's veth on a network's bridge) sends only from its own MAC and its own addresses —
// IPv4, ARP, IPv6 and neighbour discovery alike — never router advertisements, redirects or
// DHCP answers (unless it is the network's DHCP server), and nothing else at all (no VLAN tags,
// no other ethertypes, no IPv6 extension headers). No frame from a guarded port reaches the
// host itself.
//
// The rules live in one nftables table of the bridge family and, for rule sets, one of the
// inet family (see filter.go). Every change rewrites both tables in one `nft -f` transaction, so there is never a moment with no rules or half of them;
// rules match the port by name, so they are in force before the port exists (a VM's tap is
// made when it starts, after its rules are).
//
// Ring 1 and services/vmhost import portguard; portguard imports rings and the standard
// library and runs nft(8).
package portguard

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"

	"enjin"
)

// Port is one guarded port and what it may send as.
type Port struct {
	Link       string           // the host side of the port: a tap or veth name, [a-z0-9], ≤ 15 bytes
	MAC        net.HardwareAddr // the only source MAC it may use
	Addresses  []netip.Addr     // its IPv4 and IPv6 addresses; its IPv6 link-local (EUI-64 of MAC) is added
	DHCPServer bool             // it may answer DHCP and advertise the prefix (the network's own server port)
	Forward    bool             // it may send IP from any address: a router's (its MAC, ARP and NA stay its own)
	// Bridge is the bridge the port is on; with Filter, the port's rule sets are enforced.
	Bridge string
	Filter *enjin.Filter
	// Gateway is the MAC of the node's NAT gateway on the port's segment (on Bridge): the port
	// may reach it and, through it, what is beyond (see nat.go) but Protected: the cloud's
	// hosts (the segment's others among them), which the gateway never routes to.
	Gateway   net.HardwareAddr
	Protected []netip.Addr
}

// Guard is the table of one ring 1 node (of one network namespace, if Netns is set).
type Guard struct {
	Table string // the nftables table (family bridge), e.g. enjin-ports-enjin0
	Netns string // a named network namespace to work in; "" for the caller's
	NAT   NAT    // where the NAT gateway of ports with a Gateway reaches; set before the first Set

	mu    sync.Mutex
	ports map[string]Port
}

// New makes a guard for table, in the network namespace named netns ("" for the caller's).
// Nothing is installed until the first Set.
func New(table, netns string) *Guard {
	return &Guard{Table: table, Netns: netns, ports: map[string]Port{}}
}

// VXLANPorts matches the names of tenant networks' VXLAN devices (netseg's enjx<VNI>): like
// what a guarded port sends, nothing another host sends over one is for this host.
const VXLANPorts = "enjx*"

// ErrInvalid is a port that cannot be guarded as given.
var ErrInvalid = errors.New("portguard: invalid port")

func (p Port) check() error {
	if !validLink(p.Link) {
		return fmt.Errorf("%w: link %q: want 1–15 bytes of [a-z0-9]", ErrInvalid, p.Link)
	}
	if len(p.MAC) != 6 || p.MAC[0]&1 != 0 || bytes.Equal(p.MAC, make([]byte, 6)) {
		return fmt.Errorf("%w: %s: MAC %v: want a unicast Ethernet address", ErrInvalid, p.Link, p.MAC)
	}
	for _, a := range p.Addresses {
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" || a.Is4In6() {
			return fmt.Errorf("%w: %s: address %v", ErrInvalid, p.Link, a)
		}
	}
	if err := checkGateway(p); err != nil {
		return err
	}
	if p.Filter != nil {
		if len(p.Bridge) == 0 || len(p.Bridge) > 15 || strings.ContainsAny(p.Bridge, "\" \t\n;{}") {
			return fmt.Errorf("%w: %s: bridge %q", ErrInvalid, p.Link, p.Bridge)
		}
		return checkFilter(p.Link, p.Filter)
	}
	return nil
}

func (p Port) clone() Port {
	p.MAC, p.Addresses = slices.Clone(p.MAC), slices.Clone(p.Addresses)
	p.Gateway, p.Protected = slices.Clone(p.Gateway), slices.Clone(p.Protected)
	return p
}

func validLink(s string) bool {
	if len(s) == 0 || len(s) > 15 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Set guards p (replacing what its link had) and installs the table.
func (g *Guard) Set(p Port) error {
	if err := p.check(); err != nil {
		return err
	}
	p = p.clone()
	g.mu.Lock()
	defer g.mu.Unlock()
	old, had := g.ports[p.Link]
	g.ports[p.Link] = p
	if err := g.install(); err != nil {
		if had {
			g.ports[p.Link] = old
		} else {
			delete(g.ports, p.Link)
		}
		return err
	}
	return nil
}

// SetAll guards exactly ports, in one transaction: what a restarted node does with the ports
// it finds, so none of them is unguarded for a moment.
func (g *Guard) SetAll(ports []Port) error {
	next := map[string]Port{}
	for _, p := range ports {
		if err := p.check(); err != nil {
			return err
		}
		next[p.Link] = p.clone()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.ports
	g.ports = next
	if err := g.install(); err != nil {
		g.ports = old
		return err
	}
	return nil
}

// Remove stops guarding link; a link not guarded is not an error.
func (g *Guard) Remove(link string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	old, had := g.ports[link]
	if !had {
		return nil
	}
	delete(g.ports, link)
	if err := g.install(); err != nil {
		g.ports[link] = old
		return err
	}
	return nil
}

// Close deletes the table. Ports still up then send unguarded: close a guard only once its
// ports are gone.
func (g *Guard) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ports = map[string]Port{}
	return g.nft(fmt.Sprintf("table bridge %[1]s {}\ndelete table bridge %[1]s\ntable inet %[1]s {}\ndelete table inet %[1]s\n", g.Table))
}

// install writes the whole table in one transaction.
func (g *Guard) install() error {
	ports := slices.Collect(maps.Values(g.ports))
	if slices.ContainsFunc(ports, func(p Port) bool { return p.Filter != nil || p.Gateway != nil }) {
		if err := g.filtering(); err != nil {
			return err
		}
	}
	// Whether the host routes of its own accord (then what its uplinks forward is not the
	// gateway's to stop): asked at each change, as an operator may have made it one since.
	hostRoutes := true
	if len(g.NAT.Uplinks) > 0 {
		if err := g.NAT.check(); err != nil {
			return err
		}
		out, err := g.command("sysctl", "-n", "net.ipv4.conf.all.forwarding").Output()
		if err != nil {
			return fmt.Errorf("portguard: nat: %w", err)
		}
		hostRoutes = strings.TrimSpace(string(out)) == "1"
	}
	// The rules first: a NAT bridge forwards nothing until they are in force.
	if err := g.nft(g.render(ports, hostRoutes)); err != nil {
		return err
	}
	if s := natSysctls(g.NAT, ports); len(s) > 0 {
		if out, err := g.command(append([]string{"sysctl", "-q", "-w"}, s...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("portguard: nat: %w: %s", err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// command is a command line run in the guard's network namespace.
func (g *Guard) command(args ...string) *exec.Cmd {
	if g.Netns != "" {
		args = append([]string{"ip", "netns", "exec", g.Netns}, args...)
	}
	return exec.Command(args[0], args[1:]...)
}

func (g *Guard) nft(rules string) error {
	cmd := g.command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("portguard: nft: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// LinkLocal is the IPv6 link-local address a port with mac takes by itself (EUI-64).
func LinkLocal(mac net.HardwareAddr) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	copy(b[8:], []byte{mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]})
	return netip.AddrFrom16(b)
}

// Render is the nft(8) script that replaces the guard's tables with ones guarding ports:
// what Set installs (on a host that does not forward of its own accord), for a reader or a
// test to see.
func (g *Guard) Render(ports []Port) string { return g.render(ports, false) }

func (g *Guard) render(ports []Port, hostRoutes bool) string {
	table := g.Table
	slices.SortFunc(ports, func(a, b Port) int { return strings.Compare(a.Link, b.Link) })
	var b strings.Builder
	fmt.Fprintf(&b, "table bridge %[1]s {}\ndelete table bridge %[1]s\ntable bridge %[1]s {\n", table)
	b.WriteString("\tmap ports {\n\t\ttype ifname : verdict\n")
	var names []string
	if len(ports) > 0 {
		var els []string
		for _, p := range ports {
			els = append(els, fmt.Sprintf("%q : jump p_%s", p.Link, p.Link))
			names = append(names, fmt.Sprintf("%q", p.Link))
		}
		fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(els, ", "))
	}
	b.WriteString("\t}\n")
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority -200; policy accept;\n\t\tiifname vmap @ports\n\t}\n")
	b.WriteString("\tchain input {\n\t\ttype filter hook input priority -200; policy accept;\n")
	fmt.Fprintf(&b, "\t\tiifname %q counter drop\n", VXLANPorts)
	if len(names) > 0 {
		renderNATBridge(&b, ports)
		fmt.Fprintf(&b, "\t\tiifname { %s } counter drop\n", strings.Join(names, ", "))
	}
	b.WriteString("\t}\n")
	renderNATOutput(&b, ports)
	for _, p := range ports {
		renderPort(&b, p)
	}
	b.WriteString("}\n")
	renderFilters(&b, table, ports, func() { renderNAT(&b, g.NAT, ports, hostRoutes) })
	return b.String()
}

// renderPort writes port p's chain: what it may send is accepted, everything else dropped.
func renderPort(b *strings.Builder, p Port) {
	var v4, v6 []string
	for _, a := range p.Addresses {
		if a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	ll := LinkLocal(p.MAC)
	if !slices.Contains(v6, ll.String()) {
		v6 = append(v6, ll.String())
	}
	var targets []string
	for _, a := range v6 {
		x := netip.MustParseAddr(a).As16()
		targets = append(targets, fmt.Sprintf("0x%x", x[:]))
	}
	mac := p.MAC.String()
	w := func(format string, args ...any) { fmt.Fprintf(b, "\t\t"+format+"\n", args...) }
	fmt.Fprintf(b, "\tchain p_%s {\n", p.Link)
	w("ether saddr != %s counter drop", mac)
	// ARP: Ethernet/IPv4 only, from its own MAC, claiming its own address (or none: a probe).
	w("ether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether %s arp saddr ip { %s } accept",
		mac, strings.Join(append(slices.Clone(v4), "0.0.0.0"), ", "))
	w("ether type arp counter drop")
	// IPv4: a DHCP client's first word comes from no address; anything else from its own.
	w("ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept")
	if !p.DHCPServer {
		w("ether type ip udp sport 67 counter drop")
	}
	switch {
	case p.Forward:
		w("ether type ip accept")
	case len(v4) > 0:
		w("ether type ip ip saddr { %s } accept", strings.Join(v4, ", "))
	}
	w("ether type ip counter drop")
	// IPv6: no extension headers (they would hide what follows from these rules), duplicate
	// address detection from ::, else only its own addresses; no router's or server's words.
	w("ether type ip6 ip6 nexthdr != { tcp, udp, ipv6-icmp } counter drop")
	w("ether type ip6 ip6 saddr :: icmpv6 type nd-neighbor-solicit accept")
	if !p.Forward {
		w("ether type ip6 ip6 saddr != { %s } counter drop", strings.Join(v6, ", "))
	}
	if p.DHCPServer { // the network's server advertises its prefix; no port ever redirects
		w("ether type ip6 icmpv6 type nd-redirect counter drop")
	} else {
		w("ether type ip6 icmpv6 type { nd-router-advert, nd-redirect } counter drop")
	}
	w("ether type ip6 icmpv6 type nd-neighbor-advert @th,64,128 { %s } accept", strings.Join(targets, ", "))
	w("ether type ip6 icmpv6 type nd-neighbor-advert counter drop")
	if !p.DHCPServer {
		w("ether type ip6 udp sport 547 counter drop")
	}
	w("ether type ip6 accept")
	w("counter drop")
	b.WriteString("\t}\n")
}
