package keys

import (
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Scope describes a scoped signing key ring 0 places on a tenant account: whoever holds the
// key (a ring 1 node) can mint users of that account, and every such user gets exactly the
// template's permissions.
type Scope struct {
	Key      string      // public account-type key of the scoped signer
	Role     string      // e.g. "ring2-node"
	Template Permissions // may use {{subject()}}, {{name()}}, {{account-name()}}
	MaxSubs  int64       // subscriptions per user
	Payload  int64       // largest message, bytes
}

// NewScopedKey makes a fresh scoped signing key pair. The holder keeps the seed; ring 0 only
// ever sees the public key.
func NewScopedKey() (nkeys.KeyPair, error) {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("keys: scoped key: %w", err)
	}
	return kp, nil
}

// AddScope puts s on account claims ac, after checking its template fits grant g.
func AddScope(ac *jwt.AccountClaims, s Scope, g Grant) error {
	if !nkeys.IsValidPublicAccountKey(s.Key) {
		return fmt.Errorf("keys: scope %q: key %q is not an account-type public key", s.Role, s.Key)
	}
	if _, err := s.Template.within(g, true); err != nil {
		return fmt.Errorf("keys: scope %q: %w", s.Role, err)
	}
	us := jwt.NewUserScope()
	us.Key = s.Key
	us.Role = s.Role
	us.Template.Permissions = s.Template.jwt()
	us.Template.Permissions.Pub.Deny.Add(g.PubDeny...)
	us.Template.Permissions.Sub.Deny.Add(g.SubDeny...)
	us.Template.NatsLimits = jwt.NatsLimits{Subs: s.MaxSubs, Data: jwt.NoLimit, Payload: s.Payload}
	// A scoped user connects as a client, never as a leafnode (which would bring a server's
	// worth of connections in under one user) nor over a websocket.
	us.Template.AllowedConnectionTypes = jwt.StringList{jwt.ConnectionTypeStandard}
	if s.Template.Resp {
		us.Template.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
	}
	ac.SigningKeys.AddScopedSigner(us)
	return nil
}
