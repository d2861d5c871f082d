package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"enjin/bus/broker"
	"enjin/keys"
	"enjin/rings/ring0"
)

// maxUpMembers bounds `enjin up --ring0 N`: a trial cluster on one machine.
const maxUpMembers = 5

// clusterConfigs turns first — the configuration of the member that runs ring1-local — into
// n members of one ring 0 cluster on this machine, named r0-a, r0-b, …: the others keep their
// state in <state>/ring0/<member> with a copy of the trust chain, listen on free loopback
// ports (broker, API) and run no ring 1 node; all share first's database, and their brokers
// route to each other on free loopback ports below the ephemeral range.
func clusterConfigs(stateDir string, first ring0.Config, n int, log *slog.Logger) ([]ring0.Config, error) {
	if n < 1 || n > maxUpMembers {
		return nil, usagef("--ring0 %d: want 1 to %d members", n, maxUpMembers)
	}
	if n == 1 {
		return []ring0.Config{first}, nil
	}
	names, ports := make([]string, n), make([]int, n)
	for i := range n {
		names[i] = "r0-" + string(rune('a'+i))
		p, err := broker.FreePort(func(p int) bool { return slices.Contains(ports[:i], p) })
		if err != nil {
			return nil, fmt.Errorf("route port: %w", err)
		}
		ports[i] = p
	}
	cfgs := make([]ring0.Config, n)
	for i := range n {
		c := first
		if i > 0 {
			c.StateDir = filepath.Join(stateDir, "ring0", names[i])
			if _, err := os.Stat(filepath.Join(c.StateDir, "keys")); errors.Is(err, fs.ErrNotExist) {
				if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
					return nil, err
				}
				if err := keys.CopyChain(stateDir, c.StateDir); err != nil {
					return nil, err
				}
			}
			c.Ring1, c.Apps = nil, nil
			c.NATSPort, c.APIAddr = -1, "127.0.0.1:0"
		}
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("127.0.0.1:%d", p))
			}
		}
		c.Cluster = &broker.Cluster{Member: names[i], Port: ports[i], Routes: routes}
		c.Logger = log.With("member", names[i])
		cfgs[i] = c
	}
	return cfgs, nil
}
