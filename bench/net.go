package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"enjin/supervisors/netseg"
)

// NetFigures are Net's results: one path over the plain underlay between two
// hosts, one over a tenant network's VXLAN segment between endpoints on those hosts.
type NetFigures struct {
	Seconds    float64     `json:"seconds"`
	Requests   int         `json:"requests"`
	Underlay   PathFigures `json:"underlay"`
	VXLAN      PathFigures `json:"vxlan"`
	Throughput float64     `json:"throughput_ratio"`  // VXLAN / underlay
	LatencyP50 float64     `json:"latency_p50_ratio"` // VXLAN / underlay
	LatencyP99 float64     `json:"latency_p99_ratio"`
}

// PathFigures are one path's figures: bulk throughput and round trips' latency.
type PathFigures struct {
	Gbps  float64 `json:"gbit_per_sec"`
	P50Us float64 `json:"rr_p50_us"`
	P99Us float64 `json:"rr_p99_us"`
}

// NetOptions are the options of Net.
type NetOptions struct {
	Duration time.Duration // how long each throughput run lasts
	Requests int           // request/response round trips per path, at least 10
	Output   string        // "json", or text
}

// Net makes two hosts in network namespaces of their own, joined by an underlay veth
// (198.18.0.0/15), each carrying one tenant network's segment (netseg: bridge and VXLAN
// device, as ring 1 makes them) with an endpoint on it, and measures TCP bulk throughput and
// the latency of 64-byte request/response round trips host to host over the underlay and
// endpoint to endpoint over the segment. It prints both and the ratios. It needs root and
// leaves nothing behind.
func Net(_ context.Context, opt NetOptions, w io.Writer) error {
	f, err := benchNet(opt.Duration, opt.Requests)
	if err != nil {
		return err
	}
	return printNetFigures(w, opt.Output, f)
}

func printNetFigures(w io.Writer, out string, f NetFigures) error {
	if out == "json" {
		return json.NewEncoder(w).Encode(f)
	}
	fmt.Fprintf(w, "underlay, host to host:              %6.2f Gbit/s   rr p50 %7.1f µs   p99 %7.1f µs\n", f.Underlay.Gbps, f.Underlay.P50Us, f.Underlay.P99Us)
	fmt.Fprintf(w, "tenant network (VXLAN), endpoints:   %6.2f Gbit/s   rr p50 %7.1f µs   p99 %7.1f µs\n", f.VXLAN.Gbps, f.VXLAN.P50Us, f.VXLAN.P99Us)
	fmt.Fprintf(w, "ratio vxlan/underlay: throughput %.2f  latency p50 %.2f  p99 %.2f\n", f.Throughput, f.LatencyP50, f.LatencyP99)
	return nil
}

// benchNet builds the two hosts, measures both paths and takes everything away.
func benchNet(d time.Duration, reqs int) (NetFigures, error) {
	if os.Geteuid() != 0 {
		return NetFigures{}, errors.New("bench net: needs root (it makes network namespaces)")
	}
	if d <= 0 || reqs < 10 {
		return NetFigures{}, usagef("bench net: want --seconds > 0 and --requests ≥ 10")
	}
	tag := fmt.Sprint(os.Getpid() % 100000)
	names := map[string]string{}
	for _, r := range []string{"a", "b", "ea", "eb"} {
		names[r] = "enjbn-" + r + "-" + tag
	}
	defer func() {
		for _, n := range names {
			exec.Command("ip", "netns", "del", n).Run()
		}
	}()
	ua, ub := netip.MustParseAddr("198.18.200.1"), netip.MustParseAddr("198.18.200.2")
	steps := [][]string{
		{"ip", "netns", "add", names["a"]}, {"ip", "netns", "add", names["b"]},
		{"ip", "netns", "add", names["ea"]}, {"ip", "netns", "add", names["eb"]},
		{"ip", "-n", names["a"], "link", "add", "under", "type", "veth", "peer", "name", "under", "netns", names["b"]},
		{"ip", "-n", names["a"], "addr", "add", ua.String() + "/24", "dev", "under"},
		{"ip", "-n", names["b"], "addr", "add", ub.String() + "/24", "dev", "under"},
		{"ip", "-n", names["a"], "link", "set", "under", "up"}, {"ip", "-n", names["b"], "link", "set", "under", "up"},
	}
	for _, r := range []string{"a", "b", "ea", "eb"} {
		steps = append(steps, []string{"ip", "-n", names[r], "link", "set", "lo", "up"})
	}
	if err := runAll(steps); err != nil {
		return NetFigures{}, err
	}
	const vni = 9999
	for _, h := range []struct {
		host, ep     string
		self, peer   netip.Addr
		endpointAddr string
	}{{names["a"], names["ea"], ua, ub, "100.77.0.2/24"}, {names["b"], names["eb"], ub, ua, "100.77.0.3/24"}} {
		if err := segmentWithEndpoint(h.host, h.ep, vni, h.self, h.peer, h.endpointAddr); err != nil {
			return NetFigures{}, err
		}
	}
	var f NetFigures
	var err error
	f.Seconds, f.Requests = d.Seconds(), reqs
	if f.Underlay, err = measurePath(names["a"], names["b"], ub.String(), d, reqs); err != nil {
		return f, fmt.Errorf("bench net: underlay: %w", err)
	}
	if f.VXLAN, err = measurePath(names["ea"], names["eb"], "100.77.0.3", d, reqs); err != nil {
		return f, fmt.Errorf("bench net: vxlan: %w", err)
	}
	f.Throughput = f.VXLAN.Gbps / f.Underlay.Gbps
	f.LatencyP50 = f.VXLAN.P50Us / f.Underlay.P50Us
	f.LatencyP99 = f.VXLAN.P99Us / f.Underlay.P99Us
	return f, nil
}

func runAll(steps [][]string) error {
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("bench net: %s: %w: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// segmentWithEndpoint makes network vni's segment on host (as ring 1 does) and puts
// namespace ep on it at addr, through a veth.
func segmentWithEndpoint(host, ep string, vni int, self, peer netip.Addr, addr string) error {
	ns, err := netns.GetFromName(host)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	seg := netseg.New(h, "enjin bench net")
	if err := seg.Ensure(netseg.Segment{VNI: vni, Underlay: self, Peers: []netip.Addr{peer}}); err != nil {
		return err
	}
	if err := runAll([][]string{{"ip", "-n", host, "link", "add", "port", "mtu", "1450", "type", "veth", "peer", "name", "eth0", "netns", ep, "mtu", "1450"}}); err != nil {
		return err
	}
	if err := seg.Attach(vni, "port"); err != nil {
		return err
	}
	return runAll([][]string{{"ip", "-n", host, "link", "set", "port", "up"},
		{"ip", "-n", ep, "addr", "add", addr, "dev", "eth0"}, {"ip", "-n", ep, "link", "set", "eth0", "up"}})
}

// measurePath runs a server in namespace to and measures from namespace from: bulk TCP for d,
// then reqs 64-byte round trips on one connection.
func measurePath(from, to, addr string, d time.Duration, reqs int) (PathFigures, error) {
	var ln net.Listener
	if err := netseg.InNamespace(to, func() (err error) { ln, err = net.Listen("tcp", net.JoinHostPort(addr, "5201")); return err }); err != nil {
		return PathFigures{}, err
	}
	defer ln.Close()
	go serveBench(ln) // ends when ln closes
	dial := func() (c net.Conn, err error) {
		err = netseg.InNamespace(from, func() error {
			c, err = net.DialTimeout("tcp", net.JoinHostPort(addr, "5201"), 5*time.Second)
			return err
		})
		return c, err
	}
	var f PathFigures
	c, err := dial()
	if err != nil {
		return f, err
	}
	c.Write([]byte{'B'})
	buf := make([]byte, 256<<10)
	var sent int64
	start := time.Now()
	for time.Since(start) < d {
		n, err := c.Write(buf)
		if err != nil {
			c.Close()
			return f, err
		}
		sent += int64(n)
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c) // the server closes once it has read everything
	f.Gbps = float64(sent) * 8 / time.Since(start).Seconds() / 1e9
	c.Close()

	if c, err = dial(); err != nil {
		return f, err
	}
	defer c.Close()
	c.Write([]byte{'R'})
	msg, back := make([]byte, 64), make([]byte, 64)
	lat := make([]float64, 0, reqs)
	for range reqs {
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			return f, err
		}
		if _, err := io.ReadFull(c, back); err != nil {
			return f, err
		}
		lat = append(lat, float64(time.Since(t0).Nanoseconds())/1e3)
	}
	slices.Sort(lat)
	f.P50Us, f.P99Us = lat[len(lat)/2], lat[len(lat)*99/100]
	return f, nil
}

// serveBench answers each connection by its first byte: 'B' reads everything and closes, 'R'
// echoes 64-byte messages until the client goes.
func serveBench(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { // ends when the client closes
			defer c.Close()
			mode := make([]byte, 1)
			if _, err := io.ReadFull(c, mode); err != nil {
				return
			}
			if mode[0] == 'B' {
				io.Copy(io.Discard, c)
				return
			}
			b := make([]byte, 64)
			for {
				if _, err := io.ReadFull(c, b); err != nil {
					return
				}
				if _, err := c.Write(b); err != nil {
					return
				}
			}
		}()
	}
}
