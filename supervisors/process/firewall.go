package process

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// Firewall confines the bridge's children with nftables, in a table of the bridge's own
// (inet enjin-<bridge>): a child may answer connections the host opened to it (the router's),
// but may open none of its own to the host — no host service, no control or bus port, on
// any of the host's addresses — and nothing it sends is forwarded anywhere, to another child
// or beyond. Together with the bridge's isolated ports this leaves every child alone with the
// router.
func (n *Network) Firewall() error {
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("process: firewall: the nft command is missing (apt-get install nftables): %w", err)
	}
	table := "enjin-" + n.Bridge
	rules := fmt.Sprintf(`table inet %[1]s {}
delete table inet %[1]s
table inet %[1]s {
	chain input {
		type filter hook input priority -10; policy accept;
		iifname %[2]q ct state established,related accept
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
`, table, n.Bridge)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("process: firewall: nft: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// RemoveFirewall deletes the bridge's nftables table.
func (n *Network) RemoveFirewall() error {
	out, err := exec.Command("nft", "delete", "table", "inet", "enjin-"+n.Bridge).CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("No such file")) {
		return fmt.Errorf("process: firewall: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}
