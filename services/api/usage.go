package api

import (
	"encoding/json"
	"net/http"

	"enjin"
)

// compartmentUsage is what the nodes in a compartment and below it use, summed from each
// one's newest signed observation of itself.
type compartmentUsage struct {
	Compartment string `json:"compartment"`
	Nodes       int    `json:"nodes"`    // in it or below it
	NodesUp     int    `json:"nodes_up"` // as ring 0 judges them
	Reporting   int    `json:"reporting"`
	// CPU is cores busy: the nodes' own processes and the app instances they report, each a
	// fraction of one core over its last period.
	CPU       float64 `json:"cpu"`
	MemBytes  uint64  `json:"mem_bytes"` // the nodes' processes and their instances
	Instances int     `json:"instances"` // app instances and VMs they run
	// VMMemoryMB is the memory the nodes offer VMs. (No node reports power yet.)
	VMMemoryMB int64      `json:"vm_memory_mb"`
	ByNode     []nodeUsed `json:"by_node"`
}

type nodeUsed struct {
	Node      enjin.NodeID `json:"node"`
	State     string       `json:"state"`
	CPU       float64      `json:"cpu"`
	MemBytes  uint64       `json:"mem_bytes"`
	Instances int          `json:"instances"`
}

func (a *API) compartmentUsage(c *call) error {
	id := c.path["compartment"]
	claims, err := a.store.CompartmentClaims(c.ctx, id)
	if err != nil {
		return err
	}
	u := compartmentUsage{Compartment: id, Nodes: len(claims), ByNode: []nodeUsed{}}
	for _, cl := range claims {
		n := nodeUsed{Node: cl.Node, State: cl.State}
		if cl.State == "up" {
			u.NodesUp++
		}
		var o enjin.Observation
		if cl.Payload != nil && json.Unmarshal(cl.Payload, &o) == nil {
			u.Reporting++
			n.CPU, n.MemBytes, n.Instances = o.CPU, o.MemBytes, len(o.Children)
			for _, ch := range o.Children {
				n.CPU += ch.CPU
				n.MemBytes += ch.MemBytes
			}
			u.VMMemoryMB += o.VMMemoryMB
		}
		u.CPU += n.CPU
		u.MemBytes += n.MemBytes
		u.Instances += n.Instances
		u.ByNode = append(u.ByNode, n)
	}
	a.reply(c.w, http.StatusOK, u)
	return nil
}
