package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"enjin"
	"enjin/rings/ring0"
	"enjin/supervisors/fabric"
)

// maxUpHosts bounds `enjin up --ring1 N`: a trial of several hosts on one machine.
const maxUpHosts = 8

// upHosts is how many ring 1 hosts `enjin up` runs, and the block the simulated ones sit in.
type upHosts struct {
	n      int
	prefix string
}

func (h upHosts) check(apps bool) error {
	switch {
	case h.n < 1 || h.n > maxUpHosts:
		return usagef("--ring1 %d: want 1 to %d hosts", h.n, maxUpHosts)
	case h.n > 1 && !apps:
		return usagef("--ring1 %d: the hosts beyond ring1-local host apps; drop --no-apps", h.n)
	}
	if _, err := netip.ParsePrefix(h.prefix); err != nil {
		return usagef("--hosts-prefix %q: %v", h.prefix, err)
	}
	return nil
}

// make lays out and makes the fabric of the hosts beyond ring1-local — a bridge named for
// the apps' bridge, and a network namespace for each host — and returns their ring 1 specs;
// nil with one host.
func (h upHosts) make(bridge string) (*fabric.Fabric, []ring0.Ring1Spec, error) {
	if h.n <= 1 {
		return nil, nil, nil
	}
	p, err := netip.ParsePrefix(h.prefix)
	if err != nil {
		return nil, nil, usagef("--hosts-prefix %q: %v", h.prefix, err)
	}
	if len(bridge)+1+len(fmt.Sprint(h.n)) > 15 {
		return nil, nil, usagef("--ring1 %d: --bridge %q leaves no room for the hosts' bridges (%sh%d: 15 characters at most)", h.n, bridge, bridge, h.n)
	}
	var names []string
	for i := 2; i <= h.n; i++ {
		names = append(names, fmt.Sprintf("%s-h%d", bridge, i))
	}
	f, err := fabric.Plan(bridge+"f", p, names)
	if err != nil {
		return nil, nil, usagef("--ring1 %d: %v", h.n, err)
	}
	if err := f.Ensure(); err != nil {
		f.Remove()
		return nil, nil, err
	}
	var specs []ring0.Ring1Spec
	for i, fh := range f.Hosts {
		specs = append(specs, ring0.Ring1Spec{ID: enjin.NodeID(fmt.Sprintf("ring1-h%d", i+2)), Label: "simulated host",
			Netns: fh.Netns, Addr: fh.Addr, Bridge: fmt.Sprintf("%sh%d", bridge, i+2)})
	}
	return f, specs, nil
}

func specList(specs []ring0.Ring1Spec) string {
	var s []string
	for _, sp := range specs {
		s = append(s, fmt.Sprintf("%s at %s", sp.ID, sp.Addr))
	}
	return strings.Join(s, ", ")
}

// hostsUp says when each simulated host is up, waiting up to a minute for them all.
func hostsUp(ctx context.Context, r *ring0.Ring0, specs []ring0.Ring1Spec, step func(string, ...any)) {
	deadline := time.Now().Add(time.Minute)
	left := append([]ring0.Ring1Spec(nil), specs...)
	for len(left) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		var still []ring0.Ring1Spec
		for _, sp := range left {
			if n, err := r.Store().GetNode(ctx, sp.ID); err == nil && n.State == "up" {
				step("ring 1 host %s is up (network namespace %s, router %s:7080)", sp.ID, sp.Netns, sp.Addr)
			} else {
				still = append(still, sp)
			}
		}
		left = still
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, sp := range left {
		step("ring 1 host %s is not up yet (see its log under the state dir's nodes/%s/)", sp.ID, sp.ID)
	}
}
