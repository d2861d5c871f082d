package postgres_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin/services/postgres"
)

// A clean restart keeps the data, and Close leaves no process behind. This runs the production
// configuration: durable, no Fast.
func TestRestartKeepsData(t *testing.T) {
	dir := tempDir(t)
	s := start(t, postgres.Config{Dir: dir})
	if n := len(filepath.Join(s.SocketDir(), ".s.PGSQL.5432")); n > 100 {
		t.Errorf("socket path is %d bytes long", n)
	}
	if !strings.Contains(s.URL(), "/enjin?") {
		t.Errorf("URL %q does not name the database enjin", s.URL())
	}
	exec(t, s.URL(), `CREATE TABLE kept (v text NOT NULL)`)
	exec(t, s.URL(), `INSERT INTO kept VALUES ('before restart')`)
	pid := s.PID()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Wait(); err != nil {
		t.Errorf("Wait after Close: got %v want nil", err)
	}
	assertGone(t, pid)

	s = start(t, postgres.Config{Dir: dir})
	if got := queryString(t, s.URL(), `SELECT v FROM kept`); got != "before restart" {
		t.Errorf("after restart got %q want %q", got, "before restart")
	}
}

// A killed postmaster is noticed through Done and Wait, and its stale lock files do not
// block the next Start, which recovers every committed row.
func TestCrashRestart(t *testing.T) {
	dir := tempDir(t)
	s := start(t, postgres.Config{Dir: dir})
	exec(t, s.URL(), `CREATE TABLE kept (v text NOT NULL)`)
	exec(t, s.URL(), `INSERT INTO kept VALUES ('before crash')`)

	pid := s.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("Done not closed 20s after the postmaster was killed")
	}
	if err := s.Wait(); err == nil {
		t.Error("Wait after a crash: got nil want an error")
	} else {
		t.Logf("Wait: %.200s", err)
	}
	assertGone(t, pid)
	if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); err != nil {
		t.Fatalf("the killed postmaster left no postmaster.pid to test with: %v", err)
	}

	s = start(t, postgres.Config{Dir: dir})
	if got := queryString(t, s.URL(), `SELECT v FROM kept`); got != "before crash" {
		t.Errorf("after crash recovery got %q want %q", got, "before crash")
	}
}

// A second server on a running cluster is refused.
func TestAlreadyRunning(t *testing.T) {
	dir := tempDir(t)
	s := start(t, postgres.Config{Dir: dir, Fast: true})
	second, err := postgres.Start(t.Context(), postgres.Config{Dir: dir, Fast: true, Logger: logger(t)})
	if err == nil {
		second.Close()
		t.Fatal("second Start on a running cluster: got nil error")
	}
	if want := "already running"; !strings.Contains(err.Error(), want) {
		t.Errorf("second Start: got %q want it to say %q", err, want)
	}
	select {
	case <-s.Done():
		t.Fatal("the refused Start stopped the running server")
	default:
	}
	exec(t, s.URL(), `SELECT 1`)
}

// A Dir too long for a unix socket path gets a socket directory under /tmp, removed by Close.
func TestLongDir(t *testing.T) {
	parent := tempDir(t)
	if err := os.Chmod(parent, 0o755); err != nil { // as root, the postgres user must search it
		t.Fatal(err)
	}
	dir := filepath.Join(parent, strings.Repeat("d", 100))
	s := start(t, postgres.Config{Dir: dir, Fast: true})
	socketDir := s.SocketDir()
	if socketDir == dir || !strings.HasPrefix(socketDir, "/tmp/") {
		t.Errorf("socket dir got %s want a new one under /tmp", socketDir)
	}
	exec(t, s.URL(), `SELECT 1`)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(socketDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket dir %s after Close: got %v want it removed", socketDir, err)
	}
}

// tempDir is a new directory under /tmp, removed at cleanup. Not t.TempDir: its parent is
// 0700 to root, which the postgres user cannot search.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "enjin-pg-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// start starts a server that is closed at cleanup.
func start(t *testing.T, cfg postgres.Config) *postgres.Server {
	t.Helper()
	cfg.Logger = logger(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	begin := time.Now()
	s, err := postgres.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server %d ready in %v", s.PID(), time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func exec(t *testing.T, url, sql string) {
	t.Helper()
	conn := connect(t, url)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryString(t *testing.T, url, sql string) string {
	t.Helper()
	conn := connect(t, url)
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(t.Context(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	return conn
}

// assertGone checks that process pid no longer exists.
func assertGone(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill(%d, 0): got %v want ESRCH", pid, err)
	}
}
