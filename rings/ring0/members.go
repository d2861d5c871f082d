package ring0

import (
	"context"
	"crypto/sha256"
	"os"
	"strings"
	"time"

	"enjin/services/inventory"
)

// announceEvery is how often a member tells the store where it answers.
const announceEvery = 5 * time.Second

// announce records, at once and then every announceEvery until ctx ends, where this member
// answers and the hash of its admin token, so the others list it (GET /v1/members, the
// endpoints the CLI fails over to) and take its admin's token.
func (r *Ring0) announce(ctx context.Context) {
	tok, err := os.ReadFile(r.AdminTokenFile())
	if err != nil {
		r.log.Error("admin token unreadable: not announced to the other members", "err", err)
		return
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(string(tok))))
	me := inventory.Ring0Member{Member: r.member, API: r.APIURL(), NATS: r.NATSURL(), AdminHash: sum[:]}
	t := time.NewTicker(announceEvery)
	defer t.Stop()
	for {
		if err := r.store.Announce(ctx, me); err != nil && ctx.Err() == nil {
			r.log.Warn("announce to the other members", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Members lists the ring 0 members that announced themselves lately, this one among them.
func (r *Ring0) Members(ctx context.Context) ([]inventory.Ring0Member, error) {
	return r.store.Members(ctx, 6*announceEvery)
}
