package portguard

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"enjin"
)

// A network with NAT has the node as its gateway: the segment's bridge holds the gateway
// address (netseg puts it there, with a MAC of its own), and what a port sends to that MAC
// the node routes out of an uplink, masqueraded to the uplink's address. The guard holds the
// gateway to exactly that:
//   - a port (one with Port.Gateway) may send the gateway ARP and IPv4, after its anti-spoofing
//     chain like everything else; nothing else of a port's reaches the host, and the host
//     answers only replies from a NAT bridge (input);
//   - only IPv4 is routed, only out of an uplink, never to Protected or a segment's peers,
//     never to VXLAN's port, never to another NAT bridge; a port with rule sets sends beyond
//     its network only what an "out" rule accepts, and one without them anything;
//   - nothing comes in but replies; where the host is no router (net.ipv4.conf.all.forwarding
//     is 0), the uplinks forward nothing else either, though they must forward to carry the
//     replies;
//   - the host sends nothing over VXLAN from a gateway MAC: each host answers as the gateway
//     on its own segment end, with the same address and MAC as every other.

// NAT is how the node's NAT gateway reaches beyond: the interfaces traffic leaves by, and the
// blocks it never reaches whatever a port's rules say (ring 0's addresses, say).
type NAT struct {
	Uplinks   []string
	Protected []netip.Prefix
}

// natMark is the packet mark bit the forward hook sets on what the gateway routes out, for
// the postrouting hook, where the input interface is no longer known, to masquerade.
const natMark = 0x00e70000

// alwaysProtected are blocks no gateway routes to: this network, loopback, link-local (cloud
// metadata), multicast and what is reserved.
var alwaysProtected = []string{"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3"}

func (n NAT) check() error {
	for _, u := range n.Uplinks {
		if len(u) == 0 || len(u) > 15 || strings.ContainsAny(u, "\" \t\n;{}*") {
			return fmt.Errorf("%w: uplink %q", ErrInvalid, u)
		}
	}
	for _, p := range n.Protected {
		if !p.IsValid() || !p.Addr().Is4() {
			return fmt.Errorf("%w: protected block %v: want IPv4", ErrInvalid, p)
		}
	}
	return nil
}

// gatewayed are the ports with a NAT gateway.
func gatewayed(ports []Port) []Port {
	return slices.DeleteFunc(slices.Clone(ports), func(p Port) bool { return p.Gateway == nil })
}

// natSysctls are the settings the gateway needs: forwarding on the NAT bridges (and ARP
// answered only for the bridge's own address) and on the uplinks, which carry the replies
// back.
func natSysctls(nat NAT, ports []Port) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range gatewayed(ports) {
		if !seen[p.Bridge] {
			seen[p.Bridge] = true
			out = append(out, "net.ipv4.conf."+p.Bridge+".forwarding=1", "net.ipv4.conf."+p.Bridge+".arp_ignore=1")
		}
	}
	if len(out) > 0 {
		for _, u := range nat.Uplinks {
			out = append(out, "net.ipv4.conf."+u+".forwarding=1")
		}
	}
	return out
}

// ipSet is an nft set's elements from addresses and blocks, each once.
func ipSet(blocks []string) string {
	slices.Sort(blocks)
	return strings.Join(slices.Compact(blocks), ", ")
}

// renderNATBridge writes the bridge table's part of the gateway: ports' ARP and IPv4 to it
// reach the host (after their own chain), and no frame from a gateway MAC leaves over VXLAN.
func renderNATBridge(b *strings.Builder, ports []Port) {
	gws := gatewayed(ports)
	if len(gws) == 0 {
		return
	}
	for _, p := range gws {
		fmt.Fprintf(b, "\t\tiifname %q ether daddr %s ether type { arp, ip } jump p_%s\n", p.Link, p.Gateway, p.Link)
		fmt.Fprintf(b, "\t\tiifname %q ether daddr ff:ff:ff:ff:ff:ff ether type arp jump p_%s\n", p.Link, p.Link)
	}
}

// renderNATOutput writes the bridge table's output chain: the host's frames from a gateway's
// MAC stay on this host's end of the segment.
func renderNATOutput(b *strings.Builder, ports []Port) {
	gws := gatewayed(ports)
	if len(gws) == 0 {
		return
	}
	fmt.Fprintf(b, "\tchain output {\n\t\ttype filter hook output priority -200; policy accept;\n")
	fmt.Fprintf(b, "\t\toifname %q ether saddr { %s } counter drop\n\t}\n", VXLANPorts, macSet(gws))
}

func macSet(ports []Port) string {
	var macs []string
	for _, p := range ports {
		macs = append(macs, p.Gateway.String())
	}
	slices.Sort(macs)
	return strings.Join(slices.Compact(macs), ", ")
}

// renderNAT writes the inet table's part of the gateway; hostRoutes says whether the host
// forwards of its own accord (then its uplinks' other forwarding is not the gateway's to stop).
// With no gateway here now, the uplinks stay held: they forward still, once a gateway has
// made them (the setting outlives the gateway, and this process).
func renderNAT(b *strings.Builder, nat NAT, ports []Port, hostRoutes bool) {
	gws := gatewayed(ports)
	if len(gws) == 0 {
		if !hostRoutes && len(nat.Uplinks) > 0 {
			fmt.Fprintf(b, "\tchain gw_forward {\n\t\ttype filter hook forward priority -10; policy accept;\n\t\tiifname { %s } counter drop\n\t}\n",
				ipSet(quoted(nat.Uplinks)))
		}
		return
	}
	var bridges, protected, egress []string
	for _, p := range gws {
		bridges = append(bridges, fmt.Sprintf("%q", p.Bridge))
		for _, a := range p.Protected {
			protected = append(protected, a.String())
		}
		if p.Filter != nil {
			egress = append(egress, fmt.Sprintf("%q . %s : jump e_%s", p.Bridge, p.MAC, p.Link))
		}
	}
	protected = append(protected, alwaysProtected...)
	for _, pf := range nat.Protected {
		protected = append(protected, pf.Masked().String())
	}
	uplinks := quoted(nat.Uplinks)
	w := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	w("\tset nat_bridges {\n\t\ttype ifname\n\t\telements = { %s }\n\t}", ipSet(bridges))
	w("\tset gateways {\n\t\ttype ether_addr\n\t\telements = { %s }\n\t}", macSet(gws))
	w("\tset uplinks {\n\t\ttype ifname")
	if len(uplinks) > 0 {
		w("\t\telements = { %s }", ipSet(uplinks))
	}
	w("\t}")
	w("\tset protected {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\tauto-merge\n\t\telements = { %s }\n\t}", ipSet(protected))
	w("\tmap egress {\n\t\ttype ifname . ether_addr : verdict")
	if len(egress) > 0 {
		w("\t\telements = { %s }", strings.Join(egress, ", "))
	}
	w("\t}")
	w("\tchain gw_input {\n\t\ttype filter hook input priority -5; policy accept;")
	w("\t\tiifname @nat_bridges ct state established,related accept\n\t\tiifname @nat_bridges counter drop\n\t}")
	w("\tchain gw_forward {\n\t\ttype filter hook forward priority -10; policy accept;")
	w("\t\tiifname @nat_bridges ether daddr @gateways jump gw_out")
	w("\t\toifname @nat_bridges iifname != @nat_bridges jump gw_back")
	if !hostRoutes {
		w("\t\tiifname @uplinks counter drop")
	}
	w("\t}")
	w("\tchain gw_out {")
	w("\t\tmeta nfproto != ipv4 counter drop\n\t\toifname != @uplinks counter drop\n\t\tip daddr @protected counter drop")
	w("\t\tudp dport %d counter drop", vxlanPort)
	w("\t\tmeta mark set meta mark | 0x%08x\n\t}", natMark)
	w("\tchain gw_back {\n\t\tct state established,related accept\n\t\tcounter drop\n\t}")
	w("\tchain gw_nat {\n\t\ttype nat hook postrouting priority srcnat; policy accept;")
	w("\t\tmeta mark & 0x%08x == 0x%08x oifname @uplinks masquerade\n\t}", natMark, natMark)
	for _, p := range gws {
		if p.Filter != nil {
			renderEgress(b, p)
		}
	}
}

func quoted(ss []string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("%q", s))
	}
	return out
}

// vxlanPort is VXLAN's UDP port (netseg.Port): no port sends VXLAN out through the gateway.
const vxlanPort = 4789

// renderEgress writes port p's egress chain: what it sends through the gateway goes only as
// its "out" rules accept.
func renderEgress(b *strings.Builder, p Port) {
	fmt.Fprintf(b, "\tchain e_%s {\n", p.Link)
	for _, r := range p.Filter.Rules {
		if r.Direction == "out" {
			fmt.Fprintf(b, "\t\t%s\n", strings.TrimSpace(match(r)+" counter "+r.Action))
		}
	}
	b.WriteString("\t\tcounter drop\n\t}\n")
}

// checkGateway checks a port's NAT gateway and protected addresses.
func checkGateway(p Port) error {
	if p.Gateway == nil {
		return nil
	}
	if len(p.Gateway) != 6 || p.Gateway[0]&1 != 0 || len(p.Bridge) == 0 || len(p.Bridge) > 15 || strings.ContainsAny(p.Bridge, "\" \t\n;{}*") {
		return fmt.Errorf("%w: %s: gateway %v on bridge %q: want a unicast MAC on a named bridge", ErrInvalid, p.Link, p.Gateway, p.Bridge)
	}
	if len(p.Protected) > 2*enjin.MaxProtected {
		return fmt.Errorf("%w: %s: %d protected addresses", ErrInvalid, p.Link, len(p.Protected))
	}
	for _, a := range p.Protected {
		if !a.Is4() {
			return fmt.Errorf("%w: %s: protected %v: want IPv4", ErrInvalid, p.Link, a)
		}
	}
	return nil
}
