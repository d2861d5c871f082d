package enjin

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// NodeState is what a node says, or its supervisor concludes, about its health.
type NodeState string

// Node states. A node reports itself up, draining or stopping; its supervisor judges suspect
// and down from missing heartbeats.
const (
	StateUp       NodeState = "up"
	StateDraining NodeState = "draining"
	StateStopping NodeState = "stopping"
	StateSuspect  NodeState = "suspect"
	StateDown     NodeState = "down"
)

// Observation is the payload of a signed heartbeat: what a node claims about itself at one
// moment. It is small JSON; the signature travels beside it (see package bus).
type Observation struct {
	Node      NodeID     `json:"node"`
	Ring      Ring       `json:"ring"`
	State     NodeState  `json:"state"`
	Time      time.Time  `json:"time"`
	CPU       float64    `json:"cpu,omitempty"`    // fraction of one core used since the last observation
	MemBytes  uint64     `json:"mem,omitempty"`    // resident memory
	Load1     float64    `json:"load1,omitempty"`  // one-minute load average of the host
	UptimeSec float64    `json:"uptime,omitempty"` // seconds since the node started
	Tiers     []TierRole `json:"tiers,omitempty"`
	// VMMemoryMB is the memory a ring 1 node offers its VMs in all, in MiB; 0 when it hosts
	// none. Ring 0 places a VM on a node only while the VMs it holds fit in it.
	VMMemoryMB int64 `json:"vm_memory_mb,omitempty"`
	// Underlay is the address a ring 1 node carries tenant networks from (VXLAN's UDP); the
	// other hosts of a network send its frames there.
	Underlay string `json:"underlay,omitempty"`
	// AppsAPI is where a ring 1 node hosting apps serves its app API (http://host:port):
	// ring 0 forwards the tenants' app requests there, with the bearer it gave the node.
	AppsAPI string `json:"apps_api,omitempty"`
	// Router is where a ring 1 node hosting apps serves its app router (ip:port): the other
	// hosts' routers send it the requests for the apps it runs.
	Router string `json:"router,omitempty"`
	// Children are the nodes this node supervises and observes (the probe strategy): a
	// ring 1 node's app instances, each a ring 2 node.
	Children []Child `json:"children,omitempty"`
}

// Child is what a supervisor observed of one node it runs.
type Child struct {
	Node     NodeID   `json:"node"`
	Tenant   TenantID `json:"tenant"`
	App      string   `json:"app"`
	State    string   `json:"state"` // the supervisor's word: starting, healthy, unhealthy, crashed
	Restarts int      `json:"restarts"`
	CPU      float64  `json:"cpu"` // fraction of one core since the previous observation
	MemBytes uint64   `json:"mem"`
}

// TierRole is a node's claim to a role in a tier, valid for one fencing epoch.
type TierRole struct {
	Tier  string `json:"tier"`
	Role  string `json:"role"`
	Epoch int64  `json:"epoch"`
}

// SignedObservation is one observation as ring 0 stores it (services/inventory reads it),
// its API answers it, the CLI reads it and `enjin verify` checks it again (bus.VerifyStored):
// the exact signed bytes and their signature, with what ring 0 recorded beside them.
type SignedObservation struct {
	Node        NodeID          `json:"node"`
	Seq         uint64          `json:"seq"`
	TsNs        int64           `json:"ts_ns"`                 // the node's clock, unix ns, as signed
	ReceivedAt  time.Time       `json:"received_at"`           // ring 0's clock
	Signer      string          `json:"signer"`                // attestation public key
	Sig         Base64URL       `json:"sig"`                   // ed25519 signature
	Payload     Base64URL       `json:"payload"`               // the exact signed bytes
	Observation json.RawMessage `json:"observation,omitempty"` // the payload, if it is JSON (the API fills it in)
	// Observer is the node that made and signed the observation when it is not the node
	// itself (a ring 1 node reporting on its app instances); the signature covers the
	// observer's id.
	Observer NodeID `json:"observer,omitempty"`
}

// SignedBy is the node whose key signed o: its observer if it has one, else the node.
func (o SignedObservation) SignedBy() NodeID {
	if o.Observer != "" {
		return o.Observer
	}
	return o.Node
}

// Base64URL is bytes that travel in JSON as unpadded base64url, as signatures and signed
// payloads do.
type Base64URL []byte

// MarshalJSON writes b as a JSON string of unpadded base64url.
func (b Base64URL) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

// UnmarshalJSON reads a JSON string of unpadded base64url.
func (b *Base64URL) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("enjin: base64url: %w", err)
	}
	d, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("enjin: not unpadded base64url: %w", err)
	}
	*b = d
	return nil
}
