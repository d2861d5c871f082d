package vmhost

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"enjin"
	"enjin/supervisors/dhcpd"
	"enjin/supervisors/netseg"
	"enjin/supervisors/portguard"
)

// ensureDHCP starts network s's DHCP server on this host if it has none yet, its port
// guarded as the network's server.
func (h *Host) ensureDHCP(s *enjin.Segment) error {
	h.dhcpMu.Lock()
	defer h.dhcpMu.Unlock()
	if _, ok := h.dhcp[s.VNI]; ok {
		return nil
	}
	srv, port, err := h.startDHCP(s)
	if err != nil {
		return err
	}
	if err := h.cfg.Guard.Set(port); err != nil {
		srv.Close()
		return err
	}
	h.dhcp[s.VNI] = srv
	return nil
}

func (h *Host) startDHCP(s *enjin.Segment) (*dhcpd.Server, portguard.Port, error) {
	addr, err := netip.ParsePrefix(s.DHCP.Address)
	if err != nil {
		return nil, portguard.Port{}, err
	}
	mac, err := net.ParseMAC(s.DHCP.MAC)
	if err != nil {
		return nil, portguard.Port{}, err
	}
	cfg := dhcpd.Config{VNI: s.VNI, Bridge: netseg.Bridge(s.VNI), Server: addr, MAC: mac, Dir: h.dhcpDir(), NoDHCP: s.DHCP.RAOnly}
	guarded := portguard.Port{Link: dhcpd.Link(s.VNI), MAC: mac, Addresses: []netip.Addr{addr.Addr()}, DHCPServer: true}
	if s.DHCP.Address6 != "" {
		if cfg.Server6, err = netip.ParsePrefix(s.DHCP.Address6); err != nil {
			return nil, portguard.Port{}, err
		}
		guarded.Addresses = append(guarded.Addresses, cfg.Server6.Addr())
	}
	srv, err := dhcpd.Start(cfg)
	if err != nil {
		return nil, portguard.Port{}, err
	}
	return srv, guarded, nil
}

// dhcpDir holds the DHCP servers' hosts files. dnsmasq reads them again as nobody, and the
// VM directory is passable by QEMU's user already: a directory beside the VMs' does.
func (h *Host) dhcpDir() string { return filepath.Join(h.cfg.Dir, "dhcp") }

// syncDHCP tells network vni's DHCP server on this host the NICs of the VMs recorded here,
// each with its port's address; with none left, the server stops.
func (h *Host) syncDHCP(vni int) {
	h.dhcpMu.Lock()
	defer h.dhcpMu.Unlock()
	srv, ok := h.dhcp[vni]
	if !ok {
		return
	}
	hosts := map[string]netip.Addr{}
	dirs, _ := os.ReadDir(filepath.Join(h.cfg.Dir, "vms"))
	for _, d := range dirs {
		rec, ok := h.load(enjin.NodeID(d.Name()))
		if !ok {
			continue
		}
		for _, n := range rec.Request.NICs {
			if n.Segment == nil || n.Segment.VNI != vni || len(n.Segment.Addresses) == 0 {
				continue
			}
			if p, err := netip.ParsePrefix(n.Segment.Addresses[0]); err == nil && p.Addr().Is4() {
				hosts[strings.ToLower(n.MAC)] = p.Addr()
			}
		}
	}
	if len(hosts) == 0 {
		srv.Close()
		delete(h.dhcp, vni)
		if err := h.cfg.Guard.Remove(dhcpd.Link(vni)); err != nil {
			h.log.Warn("dhcp guard not removed", "vni", vni, "err", err)
		}
		return
	}
	if err := srv.SetHosts(hosts); err != nil {
		h.log.Error("dhcp hosts not set", "vni", vni, "err", err)
	}
}

// stopLeftoverDHCP stops the network servers an earlier run of the node left for networks no
// adopted VM is on (it died between a VM's going and its server's).
func (h *Host) stopLeftoverDHCP() {
	h.dhcpMu.Lock()
	defer h.dhcpMu.Unlock()
	for _, vni := range dhcpd.Leftovers(h.dhcpDir()) {
		if h.dhcp[vni] == nil {
			dhcpd.StopLeftover(h.dhcpDir(), vni)
			h.log.Info("network server of an earlier run stopped", "vni", vni)
		}
	}
}
