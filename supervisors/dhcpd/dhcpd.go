// Package dhcpd answers DHCP on a tenant network's segment, on one host: dnsmasq in a network
// namespace of its own, joined to the segment's bridge by a veth, with the network's server
// address. It hands each MAC it is told of exactly the address ring 0 allocated to that MAC's
// port, and nothing to any other MAC (no dynamic range); on a network with an IPv6 /64 it
// also sends router advertisements of the prefix; it serves no DNS. Which MACs it
// knows is changed in place (its hosts file rewritten, then SIGHUP), so a change loses no
// lease in flight.
//
// A server is named for its network's VNI; starting one where a server of that VNI runs
// already (a ring 1 node restarted) replaces it. services/vmhost imports dhcpd; dhcpd
// imports the standard library and runs ip(8) and dnsmasq(8).
package dhcpd

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config says where a server runs and as what.
type Config struct {
	VNI    int
	Bridge string       // the segment's bridge, in HostNetns
	Server netip.Prefix // the server's address on the network, with the network's length
	// Server6, if set, is the server's IPv6 address with the network's prefix (a /64): the
	// server then advertises that prefix (router advertisements, no default route) for
	// stateless address autoconfiguration — which gives each port the address ring 0 did.
	Server6 netip.Prefix
	// NoDHCP makes it answer no DHCP at all, only advertise Server6's prefix.
	NoDHCP bool
	MAC    net.HardwareAddr // the server's MAC (ring 0's port for it)
	Dir    string           // where its hosts file and pid file live: every directory above it passable by nobody (dnsmasq rereads as nobody)
	// HostNetns is the named network namespace the bridge is in; "" for the caller's.
	HostNetns string
}

// Server is one running dnsmasq.
type Server struct {
	cfg   Config
	ns    string // its own namespace
	link  string // the host side of its veth, on the bridge
	mu    sync.Mutex
	hosts map[string]netip.Addr // by MAC
	cmd   *exec.Cmd
	done  chan struct{}
	log   *logLines // what dnsmasq says
}

// logLines keeps what dnsmasq writes and signals its reads of the hosts file.
type logLines struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	mark string        // "read <hosts file>"
	read chan struct{} // closed, and replaced, when dnsmasq says it read the hosts file
}

func newLogLines(mark string) *logLines { return &logLines{mark: mark, read: make(chan struct{})} }

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if bytes.Contains(p, []byte(l.mark)) {
		close(l.read)
		l.read = make(chan struct{})
	}
	if l.buf.Len() < 64<<10 {
		l.buf.Write(p)
	}
	return len(p), nil
}

// nextRead is closed when dnsmasq next says it read the hosts file.
func (l *logLines) nextRead() <-chan struct{} { l.mu.Lock(); defer l.mu.Unlock(); return l.read }

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.buf.String())
}

// Link is the name of the host side of the server of network vni's veth (a port of the
// segment's bridge, to be guarded as the network's DHCP server).
func Link(vni int) string { return fmt.Sprintf("ed%d", vni) }

// Namespace is the name of the server of network vni's namespace.
func Namespace(vni int) string { return fmt.Sprintf("enjin-dhcp-%d", vni) }

// Start starts (or restarts) network cfg.VNI's server, answering no one until SetHosts.
func Start(cfg Config) (*Server, error) {
	if cfg.VNI < 1 || cfg.VNI > 1<<24-1 || !cfg.Server.Addr().Is4() || cfg.Server.Bits() < 8 || cfg.Server.Bits() > 30 || len(cfg.MAC) != 6 || cfg.Dir == "" {
		return nil, fmt.Errorf("dhcpd: network %d: want a VNI, an IPv4 server address with its length, a MAC and a directory", cfg.VNI)
	}
	if cfg.Server6.IsValid() && (!cfg.Server6.Addr().Is6() || cfg.Server6.Addr().Is4In6() || cfg.Server6.Bits() != 64) ||
		cfg.NoDHCP && !cfg.Server6.IsValid() {
		return nil, fmt.Errorf("dhcpd: network %d: IPv6 server address %v: want an IPv6 address in a /64 (with NoDHCP, there must be one)", cfg.VNI, cfg.Server6)
	}
	s := &Server{cfg: cfg, ns: Namespace(cfg.VNI), link: Link(cfg.VNI), hosts: map[string]netip.Addr{}}
	s.stopOld()
	// dnsmasq reads the hosts file again as nobody: the directory is passable, the file
	// readable (MACs and addresses, no secret).
	if err := os.MkdirAll(cfg.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("dhcpd: %w", err)
	}
	if err := s.writeHosts(); err != nil {
		return nil, err
	}
	if err := s.wire(); err != nil {
		s.unwire()
		return nil, err
	}
	if err := s.start(); err != nil {
		s.unwire()
		return nil, err
	}
	return s, nil
}

func (s *Server) hostIP(args ...string) []string {
	if s.cfg.HostNetns != "" {
		return append([]string{"ip", "-n", s.cfg.HostNetns}, args...)
	}
	return append([]string{"ip"}, args...)
}

// wire makes the server's namespace and its veth on the bridge.
func (s *Server) wire() error {
	steps := [][]string{
		{"ip", "netns", "add", s.ns},
		{"ip", "-n", s.ns, "link", "set", "lo", "up"},
		s.hostIP("link", "add", s.link, "mtu", "1450", "type", "veth", "peer", "name", "eth0", "netns", s.ns, "mtu", "1450"),
		{"ip", "-n", s.ns, "link", "set", "eth0", "address", s.cfg.MAC.String()},
		{"ip", "-n", s.ns, "addr", "add", s.cfg.Server.String(), "dev", "eth0"},
		{"ip", "-n", s.ns, "link", "set", "eth0", "up"},
		s.hostIP("link", "set", s.link, "master", s.cfg.Bridge, "up"),
	}
	if s.cfg.Server6.IsValid() { // its own: ring 0 and the guard see to that, no need to detect duplicates
		steps = slices.Insert(steps, 5, []string{"ip", "-n", s.ns, "addr", "add", s.cfg.Server6.String(), "dev", "eth0", "nodad"})
	}
	for _, st := range steps {
		if out, err := exec.Command(st[0], st[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("dhcpd: %s: %w: %s", strings.Join(st, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

func (s *Server) unwire() {
	exec.Command("ip", "netns", "del", s.ns).Run() // its end of the veth goes with it, and so the host's
	h := s.hostIP("link", "del", s.link)
	exec.Command(h[0], h[1:]...).Run()
}

func (s *Server) pidFile() string {
	return filepath.Join(s.cfg.Dir, "dnsmasq-"+strconv.Itoa(s.cfg.VNI)+".pid")
}
func (s *Server) hostsFile() string {
	return filepath.Join(s.cfg.Dir, "hosts-"+strconv.Itoa(s.cfg.VNI))
}

// Leftovers lists the networks whose servers a run left in dir (their pid files are there):
// each is either running still or was not closed.
func Leftovers(dir string) []int {
	var out []int
	names, _ := filepath.Glob(filepath.Join(dir, "dnsmasq-*.pid"))
	for _, n := range names {
		v, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(n), "dnsmasq-"), ".pid"))
		if err == nil && v >= 1 && v <= 1<<24-1 {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// StopLeftover stops network vni's server that a run left in dir, and removes its namespace,
// veth and files.
func StopLeftover(dir string, vni int) {
	s := &Server{cfg: Config{VNI: vni, Dir: dir}, ns: Namespace(vni), link: Link(vni)}
	s.stopOld()
	os.Remove(s.hostsFile())
}

// stopOld stops a server of this VNI that an earlier run left, and its namespace.
func (s *Server) stopOld() {
	if b, err := os.ReadFile(s.pidFile()); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "dnsmasq" {
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
		os.Remove(s.pidFile())
	}
	s.unwire()
}

// start runs dnsmasq in the namespace: DHCP for the hosts file's MACs only, router
// advertisements of the IPv6 prefix, nothing else.
func (s *Server) start() error {
	p := s.cfg.Server.Masked()
	mask := net.IP(net.CIDRMask(p.Bits(), 32)).String()
	args := []string{"netns", "exec", s.ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--port=0", "--interface=eth0", "--bind-dynamic", "--leasefile-ro", "--dhcp-authoritative", "--log-facility=-",
		"--pid-file=" + s.pidFile(), "--dhcp-hostsfile=" + s.hostsFile()}
	// It says so when it is set up (it fails at once on a bad option): once it has read the
	// hosts file, or, answering no DHCP, once it advertises.
	mark := "read " + s.hostsFile()
	if s.cfg.NoDHCP {
		mark = "IPv6 router advertisement enabled"
	} else {
		args = append(args, fmt.Sprintf("--dhcp-range=%s,static,%s,1h", p.Addr(), mask),
			"--dhcp-option=3", "--dhcp-option=6") // no router, no DNS server: the guest's first NIC has them
	}
	if p6 := s.cfg.Server6.Masked(); p6.IsValid() {
		// The prefix, on-link and for autoconfiguration, with a router lifetime of 0: this is
		// no router, and the guest's default route stays on its first NIC.
		args = append(args, "--enable-ra", fmt.Sprintf("--dhcp-range=%s,ra-only,%d", p6.Addr(), p6.Bits()),
			"--ra-param=eth0,mtu:1450,60,0")
	}
	cmd := exec.Command("ip", args...)
	out := newLogLines(mark)
	serves := out.nextRead() // its first read of the hosts file
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dhcpd: dnsmasq: %w", err)
	}
	s.cmd, s.done, s.log = cmd, make(chan struct{}), out
	go func() { cmd.Wait(); close(s.done) }() // ends when dnsmasq does
	select {
	case <-serves:
		return nil
	case <-s.done:
		return fmt.Errorf("dhcpd: dnsmasq exited: %s", out)
	case <-time.After(5 * time.Second):
		s.Close()
		return errors.New("dhcpd: dnsmasq did not start within 5 s")
	}
}

func (s *Server) writeHosts() error {
	var b strings.Builder
	macs := make([]string, 0, len(s.hosts))
	for m := range s.hosts {
		macs = append(macs, m)
	}
	slices.Sort(macs)
	for _, m := range macs {
		fmt.Fprintf(&b, "%s,%s\n", m, s.hosts[m])
	}
	tmp := s.hostsFile() + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("dhcpd: %w", err)
	}
	return os.Rename(tmp, s.hostsFile())
}

// SetHosts makes the server answer exactly these MACs, each with its address.
func (s *Server) SetHosts(hosts map[string]netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[string]netip.Addr{}
	for m, a := range hosts {
		hw, err := net.ParseMAC(m)
		if err != nil || len(hw) != 6 || !a.Is4() || !s.cfg.Server.Masked().Contains(a) {
			return fmt.Errorf("dhcpd: network %d: host %q at %v: want a MAC and an address of the network", s.cfg.VNI, m, a)
		}
		next[hw.String()] = a
	}
	s.hosts = next
	if err := s.writeHosts(); err != nil {
		return err
	}
	if s.cmd == nil || s.cmd.Process == nil || s.cfg.NoDHCP {
		return nil
	}
	// dnsmasq reads the hosts file again on SIGHUP, and says so: the change is in force once
	// it has.
	read := s.log.nextRead()
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("dhcpd: network %d: %w", s.cfg.VNI, err)
	}
	select {
	case <-read:
		return nil
	case <-s.done:
		return fmt.Errorf("dhcpd: network %d: dnsmasq exited: %s", s.cfg.VNI, s.log)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("dhcpd: network %d: dnsmasq did not read its hosts again: %s", s.cfg.VNI, s.log)
	}
}

// Close stops the server and removes its namespace and veth.
func (s *Server) Close() error {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	s.unwire()
	os.Remove(s.pidFile())
	os.Remove(s.hostsFile())
	return nil
}
