package sandbox

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// Firewall confines the bridge's children with nftables, in a table of the bridge's own
// (inet enjin-<bridge>): a child may answer connections the host opened to it (the router's),
// but may open none of its own to the host — no host service, no control or bus port, on
// any of the host's addresses (but for a VM AllowGuest let in, to GuestPort on the gateway,
// and a VM that is a ring 1 host or a sandbox of the system tenant AllowHost let in, to
// HostPort there)
// — and nothing it sends is forwarded anywhere, to another child or beyond. Together with the bridge's isolated ports this leaves every child alone with the
// router.
func (n *Network) Firewall() error {
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("sandbox: firewall: the nft command is missing (apt-get install nftables): %w", err)
	}
	table := "enjin-" + n.Bridge
	rules := fmt.Sprintf(`table inet %[1]s {}
delete table inet %[1]s
table inet %[1]s {
	set guests {
		type ipv4_addr; comment "VMs, which may reach the host's guest port on the gateway";
	}
	set hosts {
		type ipv4_addr; comment "VMs that are ring 1 hosts and the system tenant's sandboxes, which may reach ring 0's API through the host port";
	}
	chain input {
		type filter hook input priority -10; policy accept;
		iifname %[2]q ct state established,related accept
		iifname %[2]q ip saddr @guests ip daddr %[3]s tcp dport %[4]d accept
		iifname %[2]q ip saddr @hosts ip daddr %[3]s tcp dport %[5]d accept
		iifname %[2]q meta l4proto tcp reject with tcp reset
		iifname %[2]q reject
	}
	chain forward {
		type filter hook forward priority -10; policy accept;
		iifname %[2]q ct state established,related accept
		iifname %[2]q meta l4proto tcp reject with tcp reset
		iifname %[2]q reject
		oifname %[2]q ct state established,related accept
		oifname %[2]q drop
	}
}
`, table, n.Bridge, n.Gateway(), GuestPort, HostPort)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("sandbox: firewall: nft: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// GuestPort is the one port on the bridge's gateway a VM may open a connection to: ring 1's
// relay to the bus, over which the guest publishes as its ring 2 node.
const GuestPort = 4222

// HostPort is the port on the bridge's gateway a VM that is a ring 1 host (besides GuestPort)
// or a sandbox of the system tenant may open a connection to: ring 1's relay to ring 0's API.
const HostPort = 4280

// AllowGuest lets the VM with address a reach GuestPort on the gateway; DisallowGuest undoes
// it. Nothing else a VM sends to the host is accepted.
func (n *Network) AllowGuest(a netip.Addr) error { return n.guestSet("add", "guests", a) }

// DisallowGuest takes a out of the addresses AllowGuest let in.
func (n *Network) DisallowGuest(a netip.Addr) error { return n.guestSet("delete", "guests", a) }

// AllowHost lets the child with address a — a VM that is a ring 1 host, or a sandbox of the
// system tenant — reach HostPort on the gateway; DisallowHost undoes it.
func (n *Network) AllowHost(a netip.Addr) error { return n.guestSet("add", "hosts", a) }

// DisallowHost takes a out of the addresses AllowHost let in.
func (n *Network) DisallowHost(a netip.Addr) error { return n.guestSet("delete", "hosts", a) }

func (n *Network) guestSet(op, set string, a netip.Addr) error {
	if !a.Is4() || !n.Prefix.Contains(a) {
		return fmt.Errorf("sandbox: firewall: guest %v is not in %v", a, n.Prefix)
	}
	out, err := exec.Command("nft", op, "element", "inet", "enjin-"+n.Bridge, set, "{ "+a.String()+" }").CombinedOutput()
	if err != nil && !(op == "delete" && bytes.Contains(out, []byte("No such file"))) {
		return fmt.Errorf("sandbox: firewall: %s guest %v: %w: %s", op, a, err, bytes.TrimSpace(out))
	}
	return nil
}

// RemoveFirewall deletes the bridge's nftables table.
func (n *Network) RemoveFirewall() error {
	out, err := exec.Command("nft", "delete", "table", "inet", "enjin-"+n.Bridge).CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("No such file")) {
		return fmt.Errorf("sandbox: firewall: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}
