package ring1

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"enjin/bus"
)

// bid answers ring 0's offer of a placement — of an app or a VM: what this node has free now
// and what it promises, signed by its attestation key. A node that runs no apps does not bid
// for one, nor one without VMs for a VM.
func (n *Node) bid(m *nats.Msg) (any, error) {
	var o bus.Offer
	if err := json.Unmarshal(m.Data, &o); err != nil {
		return nil, fmt.Errorf("bid: %w", err)
	}
	if err := o.Tenant.Validate(); err != nil || o.ID == "" || len(o.ID) > 64 || o.App == "" || len(o.App) > 64 {
		return nil, fmt.Errorf("bid: an offer needs an id, a tenant and an app (%v)", err)
	}
	bid := bus.Bid{
		Offer: o.ID, Kind: o.Kind, Node: n.cfg.Node, Tenant: o.Tenant, App: o.App, At: time.Now().UTC(),
		MemFreeMB: memAvailableMB(), CPUs: runtime.NumCPU(), Load1: load1(),
	}
	switch o.Kind {
	case "":
		h := n.apps.Load()
		if h == nil {
			return nil, errors.New("bid: this node runs no apps")
		}
		bid.Instances, bid.TenantApps = len(h.Children()), len(h.Apps(o.Tenant, false))
		bid.Promise = fmt.Sprintf("run %s/%s's instances as its releases say, health-checked, until ring 0 moves or destroys it", o.Tenant, o.App)
	case bus.PlaceVM:
		h := n.vms.Load()
		if h == nil {
			return nil, errors.New("bid: this node runs no VMs")
		}
		bid.Instances, bid.VMMemoryMB = len(h.Children()), h.MemoryMB()
		bid.Promise = fmt.Sprintf("run %s's VM %s (%d MiB) as ring 0 says, until ring 0 destroys it", o.Tenant, o.App, o.MemoryMB)
	default:
		return nil, fmt.Errorf("bid: an offer of kind %.20q", o.Kind)
	}
	return bus.SignBid(n.cfg.Attestation, bid)
}

// memAvailableMB is the host's MemAvailable from /proc/meminfo, in MiB, or 0 if unknown.
func memAvailableMB() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb / 1024
		}
	}
	return 0
}
