package harness

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin/services/postgres"
)

// Postgres is a throwaway PostgreSQL cluster owned by one test: the production managed server
// of services/postgres with durability turned off. It listens only on a unix socket in
// SocketDir and trusts every local connection as the superuser postgres.
type Postgres struct {
	Dir       string // temporary directory holding the cluster; removed at cleanup
	SocketDir string // directory of the server's unix socket
	URL       string // pgx/libpq URL of the postgres database over the unix socket

	srv *postgres.Server
	dbs atomic.Int64 // counter for generated database names
}

// StartPostgres initializes a fresh cluster in a new directory under /tmp, starts a server on
// it with durability turned off, and waits until it accepts connections. The server is shut
// down and the directory removed at cleanup. As root, the cluster runs as the postgres user,
// since initdb refuses to run as root.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	// Not t.TempDir: its parent is 0700 to root, and the socket path must stay short.
	dir, err := os.MkdirTemp("/tmp", "enjin-pg-")
	if err != nil {
		t.Fatalf("postgres: make cluster dir: %v", err)
	}
	removeDir := func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("postgres: remove %s: %v", dir, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv, err := postgres.Start(ctx, postgres.Config{Dir: dir, Fast: true, Logger: Logger(t)})
	if err != nil {
		removeDir()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("postgres server log (%s):\n%s", dir, srv.Output())
		}
		removeDir()
	})
	return &Postgres{
		Dir:       dir,
		SocketDir: srv.SocketDir(),
		URL:       srv.DatabaseURL("postgres"),
		srv:       srv,
	}
}

// PID is the process id of the postmaster.
func (p *Postgres) PID() int { return p.srv.PID() }

// CreateDatabase creates a fresh database in the cluster and returns its URL. Tests sharing a
// cluster each get their own database this way. An empty name picks a unique one.
func (p *Postgres) CreateDatabase(t testing.TB, name string) string {
	t.Helper()
	if name == "" {
		name = fmt.Sprintf("db_%d", p.dbs.Add(1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.URL)
	if err != nil {
		t.Fatalf("postgres: connect to create database %q: %v", name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("postgres: create database %q: %v", name, err)
	}
	return p.srv.DatabaseURL(name)
}
