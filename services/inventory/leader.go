package inventory

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
)

// leaderLock is the session advisory lock whose holder leads ring 0 ("enjin" and 1).
const leaderLock = 0x656e6a696e01

// ErrFenced means a write of ring 0's singleton work carried a fencing epoch that is no longer
// the leader's: its writer was deposed, and the write was refused.
var ErrFenced = errors.New("fenced: a newer leader took over")

// Lease is one ring 0 member's hold on leadership: a dedicated session holding the leader's
// advisory lock, and the fencing epoch it took with it. PostgreSQL releases the lock when the
// session ends — the member died, or the database lost sight of it (keepalives are short on
// this session, so a partition ends it in seconds) — and the next leader's epoch fences
// every write this one still tries.
type Lease struct {
	Epoch  int64
	Member string
	conn   *pgx.Conn
}

// Session keepalives of the lease's connection: PostgreSQL drops a member it cannot reach
// within about idle + interval × count seconds, which frees the lock for another.
var leaseParams = map[string]string{
	"tcp_keepalives_idle":     "2",
	"tcp_keepalives_interval": "1",
	"tcp_keepalives_count":    "3",
	"tcp_user_timeout":        "5000", // ms: unacknowledged data to a vanished member
}

// TryLead makes member the leader if no one holds the lease: it takes the advisory lock on a
// session of its own and bumps the fencing epoch. It returns (nil, nil) while another member
// leads.
func (s *Store) TryLead(ctx context.Context, member string) (*Lease, error) {
	return s.lead(ctx, member, `SELECT pg_try_advisory_lock($1)`)
}

// Lead waits until member can lead — the lease is free — and makes it the leader, as
// TryLead; a standby waiting here takes over the moment the leader's session ends. It
// returns ctx's error if ctx ends first.
func (s *Store) Lead(ctx context.Context, member string) (*Lease, error) {
	return s.lead(ctx, member, `SELECT pg_advisory_lock($1) IS NOT NULL`)
}

func (s *Store) lead(ctx context.Context, member, lock string) (*Lease, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = "enjin ring0 leader " + member
	for k, v := range leaseParams {
		cfg.RuntimeParams[k] = v
	}
	// Short keepalives on this side too: a standby waiting on the lock over a connection that
	// silently died would otherwise wait for good.
	cfg.ConnectTimeout = 10 * time.Second
	cfg.DialFunc = (&net.Dialer{KeepAlive: 2 * time.Second}).DialContext
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("inventory: leader session: %w", err)
	}
	l := &Lease{Member: member, conn: conn}
	var got bool
	if err := conn.QueryRow(ctx, lock, leaderLock).Scan(&got); err != nil || !got {
		l.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, pgErr("leader lock", err)
	}
	err = conn.QueryRow(ctx, `UPDATE ring0_leader SET epoch = epoch + 1, member = $1, since = now() RETURNING epoch`, member).Scan(&l.Epoch)
	if err != nil {
		l.Close()
		return nil, pgErr("leader epoch", err)
	}
	return l, nil
}

// Hold checks every period that the lease's session is alive and its epoch still the
// leader's, each check bounded by timeout; it returns why the lease was lost, or ctx's error.
// A member stops its singleton work when Hold returns — within period + timeout of losing
// sight of the database, before PostgreSQL frees the lock for another.
func (l *Lease) Hold(ctx context.Context, period, timeout time.Duration) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		var epoch int64
		err := l.conn.QueryRow(cctx, `SELECT epoch FROM ring0_leader`).Scan(&epoch)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return fmt.Errorf("inventory: leader session: %w", err)
		case epoch != l.Epoch:
			return fmt.Errorf("inventory: leader epoch %d, ours %d: %w", epoch, l.Epoch, ErrFenced)
		}
	}
}

// Close ends the lease's session, which releases the lock.
func (l *Lease) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.conn.Close(ctx)
}

// Leader is who leads ring 0 as the store records it.
type Leader struct {
	Epoch  int64     `json:"epoch"`
	Member string    `json:"member"`
	Since  time.Time `json:"since"`
}

// Leader returns the last leader recorded (epoch 0: none ever led).
func (s *Store) Leader(ctx context.Context) (Leader, error) {
	var l Leader
	err := s.pool.QueryRow(ctx, `SELECT epoch, member, since FROM ring0_leader`).Scan(&l.Epoch, &l.Member, &l.Since)
	return l, pgErr("leader", err)
}

// fenced runs fn in a transaction that first checks epoch is the leader's, holding the
// leader's row shared until it commits: a takeover's epoch bump waits for it, or it sees the
// new epoch and is refused with ErrFenced.
func (s *Store) fenced(ctx context.Context, epoch int64, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var cur int64
		if err := tx.QueryRow(ctx, `SELECT epoch FROM ring0_leader FOR SHARE`).Scan(&cur); err != nil {
			return err
		}
		if cur != epoch {
			return fmt.Errorf("inventory: epoch %d, the leader's is %d: %w", epoch, cur, ErrFenced)
		}
		return fn(tx)
	})
}
