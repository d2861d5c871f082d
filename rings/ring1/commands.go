package ring1

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"enjin"
	"enjin/bus"
	"enjin/keys"
)

// Replies to ring 0's commands. Commands carry no arguments: any JSON request is accepted
// (bus.Request sends {} or null).

// PingReply answers bus.VerbPing.
type PingReply struct {
	Node enjin.NodeID `json:"node"`
	Time time.Time    `json:"time"`
}

// DescribeReply answers bus.VerbDescribe: who the node is and how it is doing.
type DescribeReply struct {
	Node      enjin.NodeID    `json:"node"`
	Ring      enjin.Ring      `json:"ring"`
	State     enjin.NodeState `json:"state"`
	PID       int             `json:"pid"`
	Hostname  string          `json:"hostname"`
	Started   time.Time       `json:"started"`
	Heartbeat string          `json:"heartbeat"` // period, as a Go duration
	Stats     Stats           `json:"stats"`
}

// DrainReply answers bus.VerbDrain.
type DrainReply struct {
	Node  enjin.NodeID    `json:"node"`
	State enjin.NodeState `json:"state"`
}

// command dispatches one request on the node's command subjects. It runs on nats.go's
// subscription goroutine; an error becomes the reply's Enjin-Error header (bus.Handle).
func (n *Node) command(m *nats.Msg, _ any) (any, error) {
	if fn, ok := n.cmds[m.Subject]; ok {
		return fn(m)
	}
	verb := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	n.log.Warn("unknown command", "verb", verb)
	return nil, fmt.Errorf("ring1 %s: unknown command %q", n.cfg.Node, verb)
}

func (n *Node) ping(*nats.Msg) (any, error) {
	return PingReply{Node: n.cfg.Node, Time: time.Now()}, nil
}

func (n *Node) describe(*nats.Msg) (any, error) {
	host, _ := os.Hostname() // empty if unknown
	return DescribeReply{
		Node:      n.cfg.Node,
		Ring:      enjin.Ring1,
		State:     n.state(),
		PID:       os.Getpid(),
		Hostname:  host,
		Started:   n.started,
		Heartbeat: n.cfg.Heartbeat.String(),
		Stats:     n.Stats(),
	}, nil
}

// drain marks the node draining for the rest of its life. Repeating it changes nothing but
// sends another heartbeat at once, in case ring 0 missed the previous one.
func (n *Node) drain(*nats.Msg) (any, error) {
	if !n.draining.Swap(true) {
		n.log.Info("draining")
	}
	n.heartbeatNow()
	return DrainReply{Node: n.cfg.Node, State: enjin.StateDraining}, nil
}

// tenantKey returns the public half of the scoped signing key the node holds for a tenant,
// making it the first time. The seed never leaves the node: ring 0 puts only the public key
// on the tenant's account, with a template that fixes every permission of the users it signs.
func (n *Node) tenantKey(m *nats.Msg) (any, error) {
	var req bus.TenantKeyRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return nil, fmt.Errorf("tenant-key: %w", err)
	}
	if err := req.Tenant.Validate(); err != nil {
		return nil, fmt.Errorf("tenant-key: %w", err)
	}
	if n.cfg.Dir == "" {
		return nil, errors.New("tenant-key: this node keeps no keys (no directory configured)")
	}
	kp, err := keys.EnsureScopedKey(filepath.Join(n.cfg.Dir, "tenants", string(req.Tenant)+".seed"))
	if err != nil {
		return nil, fmt.Errorf("tenant-key: %w", err)
	}
	if nkeys.IsValidPublicAccountKey(req.Account) {
		// Which account the key signs users of: the app instances' identities.
		if err := keys.WriteCreds(filepath.Join(n.cfg.Dir, "tenants", string(req.Tenant)+".account"), []byte(req.Account)); err != nil {
			return nil, fmt.Errorf("tenant-key: %w", err)
		}
	}
	pub, _ := kp.PublicKey()
	n.log.Info("hosting tenant", "tenant", req.Tenant)
	return bus.TenantKeyReply{Key: pub}, nil
}
