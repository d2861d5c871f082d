package portguard

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"enjin"
)

// The rule sets of ports are enforced in an inet table of the same name as the guard's: the
// bridge hands bridged IPv4 and IPv6 to the inet hooks (br_netfilter), where connection
// tracking lets replies through. A port is known there by its segment's bridge and its MAC,
// which the guard has made sure of. Two base chains: out (what ports send) and then in (what
// reaches them); an accept in the first hands the packet on to the second.

// bridgeSysctls make the bridge hand bridged IPv4 and IPv6 to the inet hooks.
var bridgeSysctls = []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"}

// EnableFiltering makes the guard's network namespace able to enforce rule sets: bridged
// traffic goes through the inet hooks (loading br_netfilter if it is not). Set refuses a
// port with a filter where this has not been done.
func (g *Guard) EnableFiltering() error {
	if g.filtering() == nil {
		return nil
	}
	exec.Command("modprobe", "br_netfilter").Run() // built in or loaded already, it fails: fine
	args := []string{"sysctl", "-q", "-w"}
	for _, k := range bridgeSysctls {
		args = append(args, k+"=1")
	}
	if out, err := g.command(args...).CombinedOutput(); err != nil {
		return fmt.Errorf("portguard: rule sets need br_netfilter: %w: %s", err, bytes.TrimSpace(out))
	}
	return g.filtering()
}

// filtering reports whether bridged traffic reaches the inet hooks here.
func (g *Guard) filtering() error {
	out, err := g.command(append([]string{"sysctl", "-n"}, bridgeSysctls...)...).Output()
	if err != nil || strings.Count(string(out), "1") != len(bridgeSysctls) {
		return fmt.Errorf("portguard: rule sets cannot be enforced: %s is not 1 here (br_netfilter)", strings.Join(bridgeSysctls, ", "))
	}
	return nil
}

// checkFilter checks a port's filter as it is to be compiled: remote networks and rule sets
// resolved.
func checkFilter(link string, f *enjin.Filter) error {
	if len(f.Rules) > 4*enjin.MaxRules {
		return fmt.Errorf("%w: %s: %d rules", ErrInvalid, link, len(f.Rules))
	}
	for i, r := range f.Rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("%w: %s: rule %d: %v", ErrInvalid, link, i+1, err)
		}
		if r.RemoteNetwork != "" || r.RemoteRuleset != "" {
			return fmt.Errorf("%w: %s: rule %d: remote network or rule set %s not resolved", ErrInvalid, link, i+1, r.RemoteNetwork+r.RemoteRuleset)
		}
	}
	return nil
}

// renderFilters writes the inet table for the ports with filters; nat writes the NAT
// gateway's part of it (nat.go).
func renderFilters(b *strings.Builder, table string, ports []Port, nat func()) {
	fmt.Fprintf(b, "table inet %[1]s {}\ndelete table inet %[1]s\ntable inet %[1]s {\n", table)
	var out, in []string
	for _, p := range ports {
		if p.Filter == nil {
			continue
		}
		key := fmt.Sprintf("%q . %s", p.Bridge, p.MAC)
		out = append(out, fmt.Sprintf("%s : jump o_%s", key, p.Link))
		in = append(in, fmt.Sprintf("%s : jump i_%s", key, p.Link))
	}
	for _, m := range []struct {
		name string
		els  []string
	}{{"out", out}, {"in", in}} {
		fmt.Fprintf(b, "\tmap %s {\n\t\ttype ifname . ether_addr : verdict\n", m.name)
		if len(m.els) > 0 {
			fmt.Fprintf(b, "\t\telements = { %s }\n", strings.Join(m.els, ", "))
		}
		b.WriteString("\t}\n")
	}
	nat()
	// Bridged packets come in and go out on the segment's bridge: iifname is the bridge. So do
	// what ports send the NAT gateway, to its MAC, which only their egress rules let beyond.
	b.WriteString("\tchain sent {\n\t\ttype filter hook forward priority -5; policy accept;\n\t\tct state established,related accept\n")
	if len(gatewayed(ports)) > 0 {
		b.WriteString("\t\tether daddr @gateways iifname . ether saddr vmap @egress\n")
	}
	b.WriteString("\t\tiifname . ether saddr vmap @out\n\t}\n")
	b.WriteString("\tchain received {\n\t\ttype filter hook forward priority 0; policy accept;\n")
	b.WriteString("\t\tct state established,related accept\n\t\tiifname . ether daddr vmap @in\n\t}\n")
	for _, p := range ports {
		if p.Filter != nil {
			renderRules(b, p)
		}
	}
	b.WriteString("}\n")
}

// renderRules writes port p's two chains: its rules out, then its rules in and a drop.
func renderRules(b *strings.Builder, p Port) {
	for _, dir := range []string{"out", "in"} {
		var sets, rules []string
		for i, r := range p.Filter.Rules {
			if r.Direction != dir {
				continue
			}
			m := match(r)
			if r.Rate > 0 {
				for _, fam := range families(r) {
					set := fmt.Sprintf("r_%s_%d_%s", p.Link, i, fam.name)
					sets = append(sets, fmt.Sprintf("\tset %s {\n\t\ttype %s\n\t\tflags dynamic\n\t\ttimeout 1m\n\t}\n", set, fam.typ))
					rules = append(rules, fmt.Sprintf("%s %s update @%s { %s saddr limit rate over %d/second burst %d packets } counter drop",
						fam.proto, m, set, fam.addr, r.Rate, burst(r.Rate)))
				}
			}
			rules = append(rules, strings.TrimSpace(m+" counter "+r.Action))
		}
		for _, s := range sets {
			b.WriteString(s)
		}
		fmt.Fprintf(b, "\tchain %s_%s {\n", dir[:1], p.Link)
		if dir == "out" { // asking for an address, and neighbour discovery: as in, below
			b.WriteString("\t\tmeta l4proto udp th sport 68 th dport 67 accept\n")
			b.WriteString("\t\ticmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept\n")
		}
		if dir == "in" {
			// The network's server answering DHCP and advertising the prefix (only its
			// port may), and neighbour discovery, which IPv6 needs as IPv4 needs ARP (which
			// no rule filters): without it a rule allowing IPv6 would allow nothing. The
			// bridge table already keeps each port to its own addresses in both.
			b.WriteString("\t\tmeta l4proto udp th sport 67 th dport 68 accept\n")
			b.WriteString("\t\ticmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept\n")
		}
		for _, r := range rules {
			fmt.Fprintf(b, "\t\t%s\n", r)
		}
		if dir == "in" {
			b.WriteString("\t\tcounter drop\n")
		}
		b.WriteString("\t}\n")
	}
}

// burst is the packets a capped source may send at once: a tenth of a second's worth.
func burst(rate int) int { return max(1, rate/10) }

type family struct{ name, typ, proto, addr string }

var (
	ipv4 = family{"4", "ipv4_addr", "meta nfproto ipv4", "ip"}
	ipv6 = family{"6", "ipv6_addr", "meta nfproto ipv6", "ip6"}
)

// families are the address families r can match.
func families(r enjin.Rule) []family {
	remote := r.Remote
	if len(r.Remotes) > 0 {
		remote = r.Remotes[0] // all of one family: checked
	}
	if remote == "" {
		return []family{ipv4, ipv6}
	}
	if netip.MustParsePrefix(remote).Addr().Is4() { // checked
		return []family{ipv4}
	}
	return []family{ipv6}
}

// match is the nft match of r (without its action).
func match(r enjin.Rule) string {
	var m []string
	if r.Remote != "" || len(r.Remotes) > 0 {
		fam, side := families(r)[0], "saddr"
		if r.Direction == "out" {
			side = "daddr"
		}
		remote := r.Remote
		if len(r.Remotes) > 0 {
			remote = "{ " + strings.Join(r.Remotes, ", ") + " }"
		}
		m = append(m, fmt.Sprintf("%s %s %s", fam.addr, side, remote))
	}
	switch r.Protocol {
	case "tcp", "udp":
		m = append(m, "meta l4proto "+r.Protocol)
		if lo, hi, _ := r.PortRange(); lo != 0 {
			ports := fmt.Sprint(lo)
			if hi != lo {
				ports = fmt.Sprintf("%d-%d", lo, hi)
			}
			m = append(m, "th dport "+ports)
		}
	case "icmp":
		m = append(m, "meta l4proto { icmp, ipv6-icmp }")
	}
	return strings.Join(m, " ")
}
