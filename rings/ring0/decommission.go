package ring0

import (
	"context"
	"fmt"
	"slices"

	"enjin"
	"enjin/keys"
	"enjin/services/inventory"
)

// Decommission takes ring 1 node id out of service for good (api.Ring0): the store marks it
// decommissioned (refused while it hosts tenants, and if its version moved on), which from
// then on refuses its join tokens and any new tenant; the verifier and the liveness judge
// forget it, so its observations are refused as from an unknown node; and every RING1 user
// key ring 0 issued for it is revoked, which closes its live connection within
// milliseconds. A node this ring 0 runs as a child process is refused: its supervisor would
// start it again with a fresh credential. Revocation failing leaves the node decommissioned
// with an error; calling again retries it.
func (r *Ring0) Decommission(ctx context.Context, id enjin.NodeID, version int64) (inventory.Node, error) {
	if r.Supervisor(id) != nil {
		return inventory.Node{}, fmt.Errorf("ring0: %w: node %s is run by this ring 0; stop it there", inventory.ErrInUse, id)
	}
	r.nodeMu.Lock()
	defer r.nodeMu.Unlock()
	n, err := r.store.Decommission(ctx, id, version)
	if err != nil {
		return inventory.Node{}, err
	}
	r.verify.Forget(id)
	r.judge.forget(id)
	r.keysChanged(id)
	revoked, err := r.revokeNode(ctx, id, n.AuthPub, "")
	if err != nil {
		return inventory.Node{}, err
	}
	r.destroyHostVM(ctx, n)
	r.log.Info("ring 1 node decommissioned", "node", id, "revoked", revoked)
	r.event("node-decommissioned", map[string]any{"node": id, "revoked": revoked})
	return n, nil
}

// revokeNode revokes in RING1 every user key of node's recorded credentials, and current,
// except keep, and marks their credentials revoked. It returns how many keys it revoked.
func (r *Ring0) revokeNode(ctx context.Context, node enjin.NodeID, current, keep string) (int, error) {
	pubs, err := r.store.LiveCredentialKeys(ctx, node, keys.RING1)
	if err != nil {
		return 0, err
	}
	if current != "" && !slices.Contains(pubs, current) {
		pubs = append(pubs, current)
	}
	n := 0
	for _, pub := range pubs {
		if pub == keep {
			continue
		}
		if err := r.broker.Revoke(ctx, keys.RING1, pub); err != nil {
			return n, fmt.Errorf("ring0: revoke user %s of node %s: %w", pub, node, err)
		}
		r.metrics.revoked.Inc()
		if _, err := r.store.RevokeCredentials(ctx, pub); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// forget stops judging node, for good: an observation committed after it (verified just
// before the node was forgotten) does not bring it back.
func (j *judge) forget(node enjin.NodeID) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.nodes[node] = &life{state: inventory.StateDecommissioned}
}
