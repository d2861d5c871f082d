package api

import (
	"context"
	"net/http"
	"time"

	"enjin"
	"enjin/bus"
	"enjin/services/inventory"
)

// latestObservation is a node's newest signed observation and ring 0's check of it.
type latestObservation struct {
	Node       enjin.NodeID `json:"node"`
	Observer   enjin.NodeID `json:"observer,omitempty"` // the node that observed and signed it, if not the node
	Seq        uint64       `json:"seq"`
	TsNs       int64        `json:"ts_ns"`
	ReceivedAt time.Time    `json:"received_at"`
	Signer     string       `json:"signer"`
	Verified   bool         `json:"verified"`
	Reason     string       `json:"reason,omitempty"` // why it does not verify
}

type latestList struct {
	Observations []latestObservation `json:"observations"`
}

// latestObservations checks each node's newest observation as `enjin verify` does offline:
// signed by a key its signer (the node, or its observer) has had, over the stored bytes.
func (a *API) latestObservations(c *call) error {
	nodes, err := a.store.ListNodes(c.ctx, inventory.NodeFilter{Limit: 10000})
	if err != nil {
		return err
	}
	current := make(map[enjin.NodeID]string, len(nodes))
	for _, n := range nodes {
		current[n.ID] = n.AttestPub
	}
	obs, err := a.store.LatestObservations(c.ctx)
	if err != nil {
		return err
	}
	earlier := map[enjin.NodeID][]string{} // signer → every key it has had, read once
	out := latestList{Observations: make([]latestObservation, 0, len(obs))}
	for _, o := range obs {
		signer := o.SignedBy()
		registered := []string{current[signer]}
		if o.Signer == "" || o.Signer != current[signer] {
			ks, ok := earlier[signer]
			if !ok {
				if ks, err = a.keysOf(c.ctx, signer); err != nil {
					return err
				}
				earlier[signer] = ks
			}
			registered = ks
		}
		why := bus.VerifyStored(o, registered)
		out.Observations = append(out.Observations, latestObservation{Node: o.Node, Observer: o.Observer, Seq: o.Seq,
			TsNs: o.TsNs, ReceivedAt: o.ReceivedAt, Signer: o.Signer, Verified: why == "", Reason: why})
	}
	a.reply(c.w, http.StatusOK, out)
	return nil
}

// keysOf lists every attestation key node's recorded versions held.
func (a *API) keysOf(ctx context.Context, node enjin.NodeID) ([]string, error) {
	h, err := a.store.History(ctx, "node", string(node))
	if err != nil {
		return nil, err
	}
	var ks []string
	for _, v := range h {
		if d, ok := v["data"].(map[string]any); ok {
			if k, ok := d["attest_pub"].(string); ok && k != "" {
				ks = append(ks, k)
			}
		}
	}
	return ks, nil
}
