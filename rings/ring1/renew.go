package ring1

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"enjin/bus"
	"enjin/keys"
)

// currentJWT is the node's credential as of now; renewals replace it.
func (n *Node) currentJWT() (string, error) { return *n.jwt.Load(), nil }

// renewals asks ring 0 for a fresh credential when two thirds of the current one's life have
// passed, then reconnects with it (the server checks a JWT only at connect). It retries a
// failed renewal every tenth of the time left. It ends with ctx.
func (n *Node) renewals(ctx context.Context, nc *nats.Conn) {
	for {
		wait := n.untilRenewal(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := n.renew(ctx, nc); err != nil {
			if ctx.Err() != nil {
				return
			}
			n.log.Warn("credential renewal failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(max(time.Second, n.left(time.Now())/10)):
			}
		}
	}
}

// untilRenewal is how long to wait before renewing: until a third of the credential's
// lifetime is left.
func (n *Node) untilRenewal(now time.Time) time.Duration {
	uc, err := jwt.DecodeUserClaims(*n.jwt.Load())
	if err != nil || uc.Expires == 0 {
		return 24 * time.Hour // no expiry: nothing to renew (checked again daily)
	}
	life := time.Duration(uc.Expires-uc.IssuedAt) * time.Second
	return max(0, time.Unix(uc.Expires, 0).Sub(now)-life/3)
}

func (n *Node) left(now time.Time) time.Duration {
	uc, err := jwt.DecodeUserClaims(*n.jwt.Load())
	if err != nil || uc.Expires == 0 {
		return time.Hour
	}
	return time.Unix(uc.Expires, 0).Sub(now)
}

func (n *Node) renew(ctx context.Context, nc *nats.Conn) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rep, err := bus.Request[bus.RenewRequest, bus.RenewReply](rctx, nc, bus.R1Ring0(bus.ServiceRenew), bus.RenewRequest{})
	if err != nil {
		return err
	}
	uc, err := jwt.DecodeUserClaims(rep.JWT)
	if err != nil {
		return fmt.Errorf("renewed credential: %w", err)
	}
	if uc.Subject != n.cfg.Creds.PublicKey || uc.Name != string(n.cfg.Node) {
		return fmt.Errorf("renewed credential is for %s (%q), not this node", uc.Subject, uc.Name)
	}
	if n.cfg.CredsPath != "" {
		b, err := jwt.FormatUserConfig(rep.JWT, n.cfg.Creds.Seed)
		if err != nil {
			return err
		}
		if err := keys.WriteCreds(n.cfg.CredsPath, b); err != nil {
			return err
		}
	}
	n.jwt.Store(&rep.JWT)
	n.log.Info("credential renewed", "expires", time.Unix(uc.Expires, 0))
	return nc.ForceReconnect()
}
