// Package inventory is ring 0's store of record, on PostgreSQL: the only package that issues
// SQL. It applies the migrations of package schema, ingests verified observations in batches
// (deduplicated on node and sequence, committed before anyone is told), and answers the
// queries and writes of the meta API: nodes, compartments (a DAG), tiers and their members,
// transactional promotion, join tokens and credentials.
//
// Writes to user-facing objects take the version the caller read and fail with ErrConflict
// if it changed; every version is kept in the history table. Errors wrap one of the
// sentinels below so the API edge can map them to HTTP statuses.
//
// Ring 0, the meta API, cmd/enjin and bench (its ingest benchmark) import inventory; rings 1
// and 2 never do.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"enjin/schema"
)

// Sentinels for decisions callers make.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("version conflict") // If-Match names a stale version
	ErrExists   = errors.New("already exists")   // a unique key is taken
	ErrInvalid  = errors.New("invalid")          // the request breaks a rule (a cycle, a bad reference)
	ErrInUse    = errors.New("in use")           // something else depends on it as things stand
)

// Store is the inventory on one PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

// Open connects to url, applies pending migrations and returns the store.
func Open(ctx context.Context, url string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("inventory: database url: %w", err)
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	// The store's queries are lookups and short scans; JIT compiles by a plan's estimated
	// cost and spent 200 ms compiling the verifier's marks at 100,000 nodes (NodeKeys) to
	// save nothing. A url that sets jit keeps its own.
	if _, ok := cfg.ConnConfig.RuntimeParams["jit"]; !ok {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("inventory: connect: %w", err)
	}
	s := &Store{pool: pool, log: log}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.EnsurePartitions(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the connection pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// migrationLock serializes ring 0 supervisors applying migrations at once.
const migrationLock = 0x656e6a696e // "enjin"

func (s *Store) migrate(ctx context.Context) error {
	ms, err := schema.Migrations()
	if err != nil {
		return err
	}
	// Under the migration lock: ring 0 members starting together on a fresh database would
	// otherwise race to create the table (IF NOT EXISTS does not serialize them).
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
		return err
	})
	if err != nil {
		return fmt.Errorf("inventory: migrations table: %w", err)
	}
	for _, m := range ms {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
				return err
			}
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.Version).Scan(&done); err != nil || done {
				return err
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			if err == nil {
				s.log.Info("applied migration", "version", m.Version, "name", m.Name)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("inventory: migration %d %s: %w", m.Version, m.Name, err)
		}
	}
	return nil
}

// pgErr maps PostgreSQL errors to the package's sentinels, keeping the original in the chain.
// retryDeadlock runs fn, a whole transaction that may be run again, up to three times while
// PostgreSQL aborts it as one side of a deadlock (40P01) — writers of many node rows at once
// (an ingest batch, a liveness verdict) lock them in orders of the planner's choosing.
func retryDeadlock(ctx context.Context, fn func() error) error {
	var err error
	for range 3 {
		var pe *pgconn.PgError
		if err = fn(); !errors.As(err, &pe) || pe.Code != "40P01" || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func pgErr(what string, err error) error {
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("inventory: %s: %w", what, ErrNotFound)
	case errors.As(err, &pe):
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("inventory: %s: %w (%s)", what, ErrExists, pe.ConstraintName)
		case "23P01": // exclusion_violation: overlapping address blocks
			return fmt.Errorf("inventory: %s: %w: overlaps another of the tenant's networks", what, ErrInvalid)
		case "23503", "23514", "22P02", "22023", "23502": // foreign key, check, bad text repr, bad value, not null
			return fmt.Errorf("inventory: %s: %w: %s", what, ErrInvalid, pe.Message)
		}
	}
	return fmt.Errorf("inventory: %s: %w", what, err)
}
