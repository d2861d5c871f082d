package ring1

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"enjin/bus"
)

// revokeQueue holds the revocations of stopped instances' users that ring 0 has not
// confirmed yet. It is kept in a file, so neither a ring 0 outage nor a restart of this node
// forgets one; each is asked again at every heartbeat until ring 0 confirms it or refuses it
// for good.
type revokeQueue struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	pending []bus.RevokeRequest
}

func newRevokeQueue(path string, log *slog.Logger) *revokeQueue {
	q := &revokeQueue{path: path, log: log}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &q.pending); err != nil {
			log.Warn("pending revocations unreadable; starting afresh", "file", path, "err", err)
		}
	}
	return q
}

// add queues req and asks for it at once.
func (q *revokeQueue) add(ctx context.Context, nc *nats.Conn, req bus.RevokeRequest) {
	q.mu.Lock()
	q.pending = append(q.pending, req)
	q.save()
	q.mu.Unlock()
	q.retry(ctx, nc)
}

// retry asks ring 0 for every pending revocation, keeping those it did not answer.
func (q *revokeQueue) retry(ctx context.Context, nc *nats.Conn) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return
	}
	left := q.pending[:0]
	for i, req := range q.pending {
		if ctx.Err() != nil {
			left = append(left, q.pending[i:]...)
			break
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := bus.Request[bus.RevokeRequest, struct{}](rctx, nc, bus.R1Ring0(bus.ServiceRevoke), req)
		cancel()
		if _, refused := errors.AsType[*bus.RemoteError](err); refused {
			q.log.Warn("revocation refused by ring 0", "tenant", req.Tenant, "user", req.User, "err", err)
			continue
		}
		if err != nil {
			left = append(left, q.pending[i:]...) // ring 0 is away: keep this and the rest
			break
		}
	}
	q.pending = left
	q.save()
}

// save writes the queue; the caller holds q.mu.
func (q *revokeQueue) save() {
	if len(q.pending) == 0 {
		os.Remove(q.path)
		return
	}
	b, _ := json.Marshal(q.pending)
	tmp := q.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		err = os.Rename(tmp, q.path)
		if err == nil {
			return
		}
	}
	q.log.Warn("pending revocations not saved", "file", q.path)
}

// size is how many revocations wait for ring 0.
func (q *revokeQueue) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}
