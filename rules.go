package enjin

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one rule of a firewall rule set, as a tenant writes it and as a ring 1 node
// compiles it for a port: traffic in to the port or out of it, of a protocol, to ports, from
// or to a remote block (or, as written, a network of the tenant's, which ring 0 turns into
// its block), accepted or dropped; an accepting rule "in" may cap how many new connections
// each remote address opens a second. Replies to what a port was let send or receive always
// pass; what no rule accepts in is dropped, what no rule drops out is sent.
type Rule struct {
	Direction     string `json:"direction"`                // in or out
	Protocol      string `json:"protocol"`                 // tcp, udp, icmp or any
	Ports         string `json:"ports,omitempty"`          // tcp and udp: "80" or "8000-8100"; empty: all
	Remote        string `json:"remote,omitempty"`         // an IPv4 or IPv6 block; empty: anywhere
	RemoteNetwork string `json:"remote_network,omitempty"` // instead of Remote: the tenant's network of that name
	RemoteRuleset string `json:"remote_ruleset,omitempty"` // instead of Remote: the ports that enforce the tenant's rule set of that name
	// Remotes is what ring 0 makes of a remote rule set for a port: its members' addresses,
	// of one family (IPv4 or IPv6), as blocks. Tenants do not write it.
	Remotes []string `json:"remotes,omitempty"`
	Action  string   `json:"action"`         // accept or drop
	Rate    int      `json:"rate,omitempty"` // accepting "in" only: new connections a second from one address; 0: no cap
}

// MaxRules is the most rules one rule set holds.
const MaxRules = 64

// MaxRate is the highest cap a rule may set.
const MaxRate = 1_000_000

// Validate checks r as a tenant wrote it.
func (r Rule) Validate() error {
	switch {
	case r.Direction != "in" && r.Direction != "out":
		return fmt.Errorf("direction %.32q: want in or out", r.Direction)
	case r.Protocol != "tcp" && r.Protocol != "udp" && r.Protocol != "icmp" && r.Protocol != "any":
		return fmt.Errorf("protocol %.32q: want tcp, udp, icmp or any", r.Protocol)
	case r.Action != "accept" && r.Action != "drop":
		return fmt.Errorf("action %.32q: want accept or drop", r.Action)
	case r.Ports != "" && r.Protocol != "tcp" && r.Protocol != "udp":
		return fmt.Errorf("ports: only tcp and udp have ports")
	case r.Rate < 0 || r.Rate > MaxRate:
		return fmt.Errorf("rate %d: want 0 to %d new connections a second", r.Rate, MaxRate)
	case r.Rate > 0 && (r.Direction != "in" || r.Action != "accept"):
		return fmt.Errorf("rate: only an accepting rule in caps new connections")
	case countSet(r.Remote, r.RemoteNetwork, r.RemoteRuleset) > 1 || len(r.Remotes) > 0 && countSet(r.Remote, r.RemoteNetwork, r.RemoteRuleset) > 0:
		return fmt.Errorf("remote, remote_network, remote_ruleset: give one")
	case r.RemoteNetwork != "" && !IsSlug(r.RemoteNetwork):
		return fmt.Errorf("remote_network %.64q: want a network's name", r.RemoteNetwork)
	case r.RemoteRuleset != "" && !IsSlug(r.RemoteRuleset):
		return fmt.Errorf("remote_ruleset %.64q: want a rule set's name", r.RemoteRuleset)
	case len(r.Remotes) > MaxRemotes:
		return fmt.Errorf("remotes: %d blocks, at most %d", len(r.Remotes), MaxRemotes)
	}
	for i, b := range r.Remotes {
		p, err := netip.ParsePrefix(b)
		if err != nil || p.Masked() != p || p.Addr().Zone() != "" || p.Addr().Is4In6() || p.Addr().Is4() != strings.Contains(r.Remotes[0], ".") {
			return fmt.Errorf("remotes[%d] %.64q: want blocks of one family, without host bits", i, b)
		}
	}
	if _, _, err := r.PortRange(); err != nil {
		return err
	}
	if r.Remote != "" {
		p, err := netip.ParsePrefix(r.Remote)
		if err != nil || p.Masked() != p || p.Addr().Zone() != "" || p.Addr().Is4In6() {
			return fmt.Errorf("remote %.64q: want a block such as 100.64.0.0/10, without host bits", r.Remote)
		}
	}
	return nil
}

// MaxRemotes bounds the blocks a compiled rule names: the members of a remote rule set.
const MaxRemotes = 4096

func countSet(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

// PortRange is Ports as its first and last port; 0, 0 for all.
func (r Rule) PortRange() (lo, hi int, err error) {
	if r.Ports == "" {
		return 0, 0, nil
	}
	a, b, isRange := strings.Cut(r.Ports, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := lo, error(nil)
	if isRange {
		hi, err2 = strconv.Atoi(b)
	}
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi || len(r.Ports) > 11 {
		return 0, 0, fmt.Errorf("ports %.32q: want a port or a range such as 8000-8100, within 1-65535", r.Ports)
	}
	return lo, hi, nil
}

// Filter is what a port's rule sets come to, in order, with remote networks made blocks: set
// on a port, what no rule accepts in is dropped.
type Filter struct {
	Rules []Rule `json:"rules"`
}
