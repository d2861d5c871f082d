package ring0

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/services/inventory"
)

// serveRenew answers ring 1 nodes asking for a fresh credential before theirs expires. The
// caller is known from the server-attested Nats-Request-Info header (account, user key, JWT
// name), never from the request; only a RING1 user whose key is the one registered for the
// node it is named after gets a credential, for that same key.
func (r *Ring0) serveRenew() error {
	ring1, err := r.broker.Chain().Account(keys.RING1)
	if err != nil {
		return err
	}
	_, err = bus.Handle(r.nc, bus.Ring0API(bus.ServiceRenew), "ring0", func(m *nats.Msg, _ bus.RenewRequest) (bus.RenewReply, error) {
		var ci struct {
			Account string `json:"acc"`
			User    string `json:"user"`
			Name    string `json:"name_tag"`
		}
		if err := json.Unmarshal([]byte(m.Header.Get("Nats-Request-Info")), &ci); err != nil || ci.Account != ring1.Public {
			return bus.RenewReply{}, errors.New("renew: only ring 1 nodes renew here")
		}
		node := enjin.NodeID(ci.Name)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := r.store.GetNode(ctx, node)
		if err != nil || n.AuthPub == "" || n.AuthPub != ci.User || n.State == inventory.StateDecommissioned {
			r.log.Warn("renewal refused", "node", node, "user", ci.User)
			return bus.RenewReply{}, fmt.Errorf("renew: %s is not the key registered for %q", ci.User, node)
		}
		tok, err := r.mintRing1(ctx, node, ci.User)
		if err != nil {
			return bus.RenewReply{}, fmt.Errorf("renew: %w", err)
		}
		return bus.RenewReply{JWT: tok}, nil
	})
	return err
}
