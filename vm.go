package enjin

import (
	"fmt"
	"net/netip"
)

// VM states, as ring 0 wants them and as a ring 1 node observes them.
const (
	VMRunning = "running"
	VMStopped = "stopped"
	VMPending = "pending" // recorded, not yet realized
	VMCrashed = "crashed"
	VMFailed  = "failed" // the node could not realize it; Reason says why
)

// VMRequest is everything a ring 1 node needs to realize one VM: the whole wanted state, so
// sending it again changes nothing and a node that missed a change catches up by being sent
// the latest.
type VMRequest struct {
	ID       NodeID     `json:"id"` // a UUID: the VM's name as a ring 2 node, and its libvirt domain's
	Tenant   TenantID   `json:"tenant"`
	Name     string     `json:"name"`
	VCPUs    int        `json:"vcpus"`
	MemoryMB int        `json:"memory_mb"`
	DiskGB   int        `json:"disk_gb"`
	Image    VMImage    `json:"image"`
	NICs     []VMNIC    `json:"nics,omitempty"`
	Volumes  []VMVolume `json:"volumes,omitempty"`
	SSHKeys  []string   `json:"ssh_keys,omitempty"`
	UserData string     `json:"user_data,omitempty"`
	State    string     `json:"state"` // VMRunning or VMStopped
	// Host, if set, makes the VM a ring 1 host of its own (the libvirt strategy): it belongs
	// to no tenant (Tenant is empty), and joins ring 0 with Host's one-time token.
	Host *VMHost `json:"host,omitempty"`
}

// VMHost is what a VM needs to become a ring 1 host: the one-time token it joins ring 0
// with. The node running the VM adds how it reaches ring 0 (a relay on its gateway).
type VMHost struct {
	Token string `json:"token"`
}

// MaxJoinToken bounds a join token's length, wherever one is carried.
const MaxJoinToken = 256

// VMImage names the image a VM boots: a disk image (qcow2), or a kernel and initramfs. The
// node fetches each file from ring 0 by its digest (sha256-…) and checks it.
type VMImage struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`             // disk or kernel
	Digest string `json:"digest"`           // the image's; a disk image's file has it too
	Kernel string `json:"kernel,omitempty"` // a kernel pair's files
	Initrd string `json:"initrd,omitempty"`
}

// VMNIC is one network interface of a VM: on the node's own network ("default": the bus relay
// and the router, addressed by the node), or on one of its tenant's networks, as ring 0's
// port there says.
type VMNIC struct {
	MAC     string   `json:"mac"`
	Network string   `json:"network"`
	Segment *Segment `json:"segment,omitempty"` // set for a tenant network
}

// AppNetwork is a tenant network an app's instances join, with the rule sets their ports
// there enforce. An instance's port takes nothing in but what its rule sets let in.
type AppNetwork struct {
	Name     string   `json:"name"`
	Rulesets []string `json:"rulesets,omitempty"`
}

// MaxAppNetworks bounds the networks an app's instances join, and the rule sets on each.
const MaxAppNetworks = 8

// DefaultNetwork is the node's own network every VM's first NIC is on.
const DefaultNetwork = "default"

// Segment is a NIC's place on a tenant network: the network's VXLAN id, the other hosts that
// carry it, and the port ring 0 made for the NIC with its addresses.
type Segment struct {
	VNI       int      `json:"vni"`
	Peers     []string `json:"peers,omitempty"`     // the underlay addresses of the network's other hosts
	Port      string   `json:"port"`                // the port's id (a UUID)
	Addresses []string `json:"addresses,omitempty"` // the port's addresses with the network's prefix length
	Gateway   string   `json:"gateway,omitempty"`   // the network's gateway address
	// NAT: the host answers at Gateway (with netseg's gateway MAC for the VNI) and takes what
	// the port sends beyond the network out through its NAT, as far as Filter lets it out.
	NAT bool `json:"nat,omitempty"`
	// Protected are addresses the NAT gateway never takes a port's traffic to, whatever its
	// rules say: ring 0's and every ring 1 host's.
	Protected []string `json:"protected,omitempty"`
	Filter    *Filter  `json:"filter,omitempty"` // the NIC's rule sets; nil: none, all of the network may reach it
	DHCP      *DHCP    `json:"dhcp,omitempty"`   // the network answers DHCP: its server on this host
	// Forward lets the port send from any address: it is a router's (a VM routing between
	// its networks). Its MAC, ARP and neighbour advertisements stay its own.
	Forward bool    `json:"forward,omitempty"`
	Routes  []Route `json:"routes,omitempty"` // what the endpoint reaches through a router on this network
}

// MaxProtected bounds a segment's protected addresses.
const MaxProtected = 4096

// NATGateway is the gateway address of a segment with NAT, with the length of the network's
// IPv4 block (its port's first IPv4 address's); invalid without NAT.
func (s Segment) NATGateway() (netip.Prefix, error) {
	if !s.NAT {
		return netip.Prefix{}, nil
	}
	gw, err := netip.ParseAddr(s.Gateway)
	if err != nil || !gw.Is4() {
		return netip.Prefix{}, fmt.Errorf("nat gateway %.64q: want an IPv4 address", s.Gateway)
	}
	for _, a := range s.Addresses {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() && p.Contains(gw) && p.Bits() >= 8 && p.Bits() <= 30 {
			return netip.PrefixFrom(gw, p.Bits()), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("nat gateway %s: in the block of none of the port's addresses", gw)
}

// Route is a block an endpoint reaches through a router on one of its networks: To (a block;
// 0.0.0.0/0 for its default route) via that router's address there.
type Route struct {
	To  string `json:"to"`
	Via string `json:"via"`
}

// Parse is r checked: an IPv4 block, without host bits, via an IPv4 address.
func (r Route) Parse() (netip.Prefix, netip.Addr, error) {
	to, err1 := netip.ParsePrefix(r.To)
	via, err2 := netip.ParseAddr(r.Via)
	if err1 != nil || err2 != nil || !to.Addr().Is4() || to.Masked() != to || !via.Is4() || via.IsUnspecified() {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("route %.64q via %.64q: want an IPv4 block via an IPv4 address", r.To, r.Via)
	}
	return to, via, nil
}

// DHCP is a network's server on one host: ring 0's port for it (its address, with the
// network's length, and MAC). On a network with DHCP it answers the host's NICs there, each
// with its port's address; on one with an IPv6 prefix it advertises the prefix from Address6.
type DHCP struct {
	Address  string `json:"address"`
	Address6 string `json:"address6,omitempty"` // with the prefix's length (64)
	MAC      string `json:"mac"`
	RAOnly   bool   `json:"ra_only,omitempty"` // the network answers no DHCP: the server only advertises the prefix
}

// VMVolume is a volume a VM has attached.
type VMVolume struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	SizeGB int    `json:"size_gb"`
}

// VMStatus is what a ring 1 node observes of a VM.
type VMStatus struct {
	ID        NodeID   `json:"id"`
	State     string   `json:"state"`
	Addresses []string `json:"addresses,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	UserPub   string   `json:"user_pub,omitempty"`   // its bus user, whose key names its observations' subject
	AttestPub string   `json:"attest_pub,omitempty"` // the key its observations are signed with
}
