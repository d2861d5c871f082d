package harness

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestPostgres(t *testing.T) {
	var pg *Postgres
	var pid int
	t.Run("cluster", func(t *testing.T) {
		start := time.Now()
		pg = StartPostgres(t)
		pid = pg.PID()
		t.Logf("cluster in %s ready in %v (postmaster %d)", pg.Dir, time.Since(start).Round(time.Millisecond), pid)
		if n := len(pg.SocketDir + "/.s.PGSQL.5432"); n >= 100 {
			t.Errorf("socket path is %d bytes long", n)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		roundTrip(ctx, t, pg.URL, "hello")

		// A separate database, as parallel tests sharing the cluster would use.
		url := pg.CreateDatabase(t, "second")
		roundTrip(ctx, t, url, "world")
		if got := pg.CreateDatabase(t, ""); got == url || got == pg.URL {
			t.Errorf("generated database URL %q not fresh", got)
		}

		// A connection left open must not hold up the shutdown at cleanup.
		leaked, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaked.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
	})
	if pg == nil {
		t.Fatal("cluster did not start")
	}
	// The subtest's cleanup has run: the postmaster is gone and its directory removed.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("postmaster %d still exists after cleanup (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(pg.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster dir %s not removed after cleanup: %v", pg.Dir, err)
	}
}

// roundTrip creates a table in the database at url, inserts a row, and reads it back.
func roundTrip(ctx context.Context, t *testing.T, url, value string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO t (id, v) VALUES ($1, $2)`, 1, value); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := conn.QueryRow(ctx, `SELECT v FROM t WHERE id = $1`, 1).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != value {
		t.Fatalf("read back %q, want %q", got, value)
	}
}
