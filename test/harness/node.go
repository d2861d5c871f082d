package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"enjin/supervisors/libvirt"
)

// RemoveNode removes what a test cloud's ring 1 node (ring1-local on bridge) leaves on the
// host once the cloud is stopped: the VMs it ran, which outlive it as they would in
// production, their files under /var/lib/enjin/vms, its firewall tables and the bridge.
// libvirtd is asked only when the node made VMs.
func RemoveNode(t testing.TB, bridge string) {
	t.Helper()
	dir := filepath.Join("/var/lib/enjin/vms", "ring1-local-"+bridge)
	if vms, _ := os.ReadDir(filepath.Join(dir, "vms")); len(vms) > 0 {
		removeDomains(t, dir+"/")
	}
	stopDHCP(filepath.Join(dir, "dhcp"))
	os.RemoveAll(dir)
	exec.Command("ip", "link", "del", bridge).Run()
	removeSegments(bridge)
	exec.Command("nft", "delete", "table", "inet", "enjin-"+bridge).Run()
	exec.Command("nft", "delete", "table", "bridge", "enjin-ports-"+bridge).Run()
	exec.Command("nft", "delete", "table", "inet", "enjin-ports-"+bridge).Run()
}

// removeSegments deletes the tenant network devices a node on bridge made (their alias names
// their owner, "enjin NODE BRIDGE"), should it have died before removing them.
func removeSegments(bridge string) {
	links, _ := netlink.LinkList()
	for _, l := range links {
		if a := l.Attrs().Alias; strings.HasPrefix(a, "enjin ") && strings.HasSuffix(a, " "+bridge) {
			netlink.LinkDel(l)
		}
	}
}

// removeDomains destroys and undefines every enjin domain whose definition names a file
// under dir.
func removeDomains(t testing.TB, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := libvirt.Dial(ctx, libvirt.System, Logger(t))
	if err != nil {
		t.Logf("VMs under %s not removed: %v", dir, err)
		return
	}
	defer c.Close()
	infos, err := c.List()
	if err != nil {
		t.Logf("VMs under %s not removed: %v", dir, err)
		return
	}
	for _, in := range infos {
		if x, err := c.XML(in.Name, false); err != nil || !strings.Contains(x, dir) {
			continue
		}
		if err := c.Destroy(in.Name); err != nil {
			t.Logf("destroy VM %s: %v", in.Name, err)
		}
		if err := c.Undefine(in.Name); err != nil {
			t.Logf("undefine VM %s: %v", in.Name, err)
		}
	}
}

// stopDHCP stops the DHCP servers whose pid files are in dir, and removes their namespaces.
func stopDHCP(dir string) {
	pids, _ := filepath.Glob(filepath.Join(dir, "dnsmasq-*.pid"))
	for _, f := range pids {
		if b, err := os.ReadFile(f); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		vni := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "dnsmasq-"), ".pid")
		exec.Command("ip", "netns", "del", "enjin-dhcp-"+vni).Run()
	}
}
