package test

import (
	"encoding/json"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"enjin/test/harness"
)

// checkTenantNetwork puts VMs on tenants' networks: acme's two VMs on its network "lan" reach
// each other there, over IPv4 and IPv6, as acme/lana's rule set allows, and no longer once it does not, while beta's VM at the same address on beta's network of the same block
// is out of their reach (another segment); each VM keeps its first NIC on the node's network;
// the host has no address on a tenant network; its DHCP server offers each VM its own address; a NIC added on the network gets the
// next address; and destroying the VMs takes their segments and guards away and gives the
// addresses back, so the network can be deleted.
func (c *cloud) checkTenantNetwork(t *testing.T) {
	t.Helper()
	c.cli("tenants", "create", "beta")
	vnis := map[string]int{}
	for _, n := range []string{"acme/lan", "beta/lan"} {
		var nw struct {
			VNI int `json:"vni"`
		}
		args := []string{"networks", "create", n, "--cidr4", "100.78.0.0/24", "--dhcp", "-o", "json"}
		if n == "acme/lan" { // acme's has IPv6 too
			args = append(args, "--prefix6", "fd00:78::/64")
		}
		out := c.cli(args...)
		if err := json.Unmarshal([]byte(out), &nw); err != nil {
			t.Fatalf("networks create %s: %v\n%s", n, err, out)
		}
		vnis[n] = nw.VNI
	}
	// acme/lana takes in only what rule set "web" accepts: HTTP from acme's network.
	c.cli("rulesets", "create", "acme/web", "--rule", "in tcp 80 from net:lan accept")
	// beta's VM first, so that it holds 100.78.0.2 on its network before acme's does on its.
	betaVM := c.createVM("beta/other", "--network", "lan")
	// Each asks the network's DHCP server too (its address is in its metadata already): the
	// server offers each exactly its port's address, through lana's rule set as well.
	dhcp := `udhcpc -i eth1 -n -q -t 5 -T 1 -s /bin/true 2>&1 | grep -o "lease of [0-9.]*" | sed "s/^/dhcp-/" >/dev/console; `
	a := c.createVM("acme/lana", "--network", "lan", "--ruleset", "web", "--user-data", dhcp)
	v6a := eui64("fd00:78::", a.Spec.NICs[1].MAC)
	if len(a.Addresses) != 3 || a.Addresses[1] != "100.78.0.2" || a.Addresses[2] != v6a || len(betaVM.Addresses) != 2 || betaVM.Addresses[1] != "100.78.0.2" {
		t.Fatalf("addresses: acme/lana %v, beta/other %v; want each the node's and 100.78.0.2, and acme/lana %s", a.Addresses, betaVM.Addresses, v6a)
	}
	// lanb asks 100.78.0.2 on acme's network for its name (over HTTP, with nc: busybox's wget
	// crashes in this guest) five times a second, in the background (user data runs before
	// the guest serves), and says on the console each time the answer changes.
	ask := `( last=; while :; do r=$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 1 100.78.0.2 80 2>/dev/null | tail -n 1); ` +
		`s=closed; [ -n "$r" ] && s="reached: $r"; [ "$s" != "$last" ] && echo "lan-$s" >/dev/console; last=$s; sleep 0.2; done ) >/dev/null 2>&1 &`
	// And once over IPv6, by lana's address from its MAC.
	ask6 := `( for i in $(seq 300); do r=$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 1 ` + v6a + ` 80 2>/dev/null | tail -n 1); ` +
		`if [ -n "$r" ]; then echo "lan6-reached: $r" >/dev/console; break; fi; sleep 0.2; done ) >/dev/null 2>&1 &`
	b := c.createVM("acme/lanb", "--network", "lan", "--user-data", dhcp+ask+ask6)
	if len(b.Addresses) != 3 || b.Addresses[1] != "100.78.0.3" || b.Addresses[2] != eui64("fd00:78::", b.Spec.NICs[1].MAC) {
		t.Fatalf("acme/lanb's addresses: %v", b.Addresses)
	}
	c.waitConsoleAfter("acme/lanb", "", "lan6-reached: lana")
	c.waitConsoleAfter("acme/lana", "", "dhcp-lease of 100.78.0.2")
	c.waitConsoleAfter("acme/lanb", "", "dhcp-lease of 100.78.0.3")
	// Each change of lana's rule set is in force when the command returns: lanb sees HTTP
	// closed, then open again.
	c.waitConsoleAfter("acme/lanb", "", "lan-reached: lana")
	c.cli("rulesets", "update", "acme/web", "--rule", "in tcp 22 accept")
	c.waitConsoleAfter("acme/lanb", "lan-reached: lana", "lan-closed")
	c.cli("rulesets", "update", "acme/web", "--rule", "in tcp 80 from net:lan accept rate 20")
	c.waitConsoleAfter("acme/lanb", "lan-closed", "lan-reached: lana")
	t.Logf("acme/lanb reached acme/lana at 100.78.0.2 and %s over acme's network (beta/other at the same IPv4 address was not reached); DHCP offered each its address; a rule set change closed HTTP and the next opened it", v6a)
	bad, err := exec.Command(harness.Binary(t), "rulesets", "delete", "acme/web", "--state-dir", c.state).CombinedOutput()
	if err == nil || !strings.Contains(string(bad), "lana") || strings.Count(strings.TrimSpace(string(bad)), "\n") != 0 {
		t.Fatalf("a rule set in use was deleted, or not in one line: %v\n%s", err, bad)
	}

	// The host takes no part in a tenant's network: no address on its bridge, IPv4 or IPv6.
	// (Nothing is sent to see: this machine would route it out of its uplink.)
	for n, vni := range vnis {
		if out := harness.Run(t, "ip", "-o", "addr", "show", "dev", "enjn"+strconv.Itoa(vni)); strings.TrimSpace(out) != "" {
			t.Fatalf("the host has an address on %s's segment:\n%s", n, out)
		}
	}

	if got := c.vmJSON("vms", "nic", "add", "acme/lanb", "--network", "lan", "-o", "json"); len(got.Addresses) != 5 || got.Addresses[3] != "100.78.0.4" {
		t.Fatalf("nic add on lan: %+v", got)
	}
	bad, err = exec.Command(harness.Binary(t), "vms", "nic", "add", "acme/lanb", "--network", "nowhere", "--state-dir", c.state).CombinedOutput()
	if err == nil || !strings.Contains(string(bad), "nowhere") {
		t.Fatalf("a NIC on a network acme does not have: %v\n%s", err, bad)
	}

	for _, vm := range []string{"acme/lana", "acme/lanb", "beta/other"} {
		c.cli("vms", "destroy", vm)
	}
	for n, vni := range vnis {
		if out, err := exec.Command("ip", "link", "show", "enjn"+strconv.Itoa(vni)).CombinedOutput(); err == nil {
			t.Fatalf("the segment of %s is left after its VMs went:\n%s", n, out)
		}
	}
	if out := harness.Run(t, "ip", "netns", "list"); strings.Contains(out, "enjin-dhcp-"+strconv.Itoa(vnis["acme/lan"])) {
		t.Fatalf("the DHCP server of acme/lan is left after its VMs went:\n%s", out)
	}
	if out, _ := exec.Command("nft", "list", "table", "bridge", "enjin-ports-"+c.bridge).CombinedOutput(); strings.Contains(string(out), "chain p_") {
		t.Fatalf("guards left after the VMs went:\n%s", out)
	}
	for n := range vnis {
		c.cli("networks", "delete", n) // refused while a port holds an address
	}
	c.cli("rulesets", "delete", "acme/web")
	c.cli("tenants", "delete", "beta")
}

// waitConsoleAfter waits until what vm's console says after the last occurrence of mark (the
// whole console if mark is "") holds want.
func (c *cloud) waitConsoleAfter(vm, mark, want string) {
	c.t.Helper()
	var con string
	if !harness.Poll(120*time.Second, func() bool {
		con = c.cli("vms", "console", vm)
		i := 0
		if mark != "" {
			i = strings.LastIndex(con, mark)
		}
		return i >= 0 && strings.Contains(con[i+len(mark):], want)
	}) {
		diag, _ := exec.Command("sh", "-c", "bridge link; nft list table bridge enjin-ports-"+c.bridge+"; nft list table inet enjin-ports-"+c.bridge).CombinedOutput()
		c.t.Fatalf("%s's console does not say %q after %q:\n%s\n%s", vm, want, mark, con[max(0, len(con)-3000):], diag)
	}
}

// networkTables sums up what carries the node's tenant networks: the guard's and the rule
// sets' chains by name, and the DHCP servers' namespaces.
func (c *cloud) networkTables(t *testing.T) string {
	t.Helper()
	var lines []string
	for _, family := range []string{"bridge", "inet"} {
		out, _ := exec.Command("nft", "list", "table", family, "enjin-ports-"+c.bridge).CombinedOutput()
		for l := range strings.Lines(string(out)) {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "chain" && strings.Contains(f[1], "_et") {
				lines = append(lines, family+" "+f[1])
			}
		}
	}
	for l := range strings.Lines(harness.Run(t, "ip", "netns", "list")) {
		if strings.HasPrefix(l, "enjin-dhcp-") {
			lines = append(lines, strings.Fields(l)[0])
		}
	}
	if len(lines) < 4 { // keep-c's guard, its rules in and out, its network's DHCP server
		t.Fatalf("tenant network state: %v", lines)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// eui64 is the address on IPv6 prefix (written "fd00:78::") of a NIC with mac.
func eui64(prefix, mac string) string {
	hw, _ := net.ParseMAC(mac)
	b := netip.MustParseAddr(prefix).As16()
	copy(b[8:], []byte{hw[0] ^ 2, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]})
	return netip.AddrFrom16(b).String()
}
