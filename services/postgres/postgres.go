// Package postgres runs a managed local PostgreSQL server from the machine's own binaries
// (/usr/lib/postgresql/*/bin): the database ring 0 uses when it is given no database URL, as
// under `enjin up`, and the throwaway clusters of test/harness.
//
// Start initializes a cluster in Config.Dir the first time and reuses it, with its data, on
// every later Start; it returns once the database "enjin" accepts connections. Guarantees:
//
//   - Durable by default: fsync, synchronous commit and full-page writes stay on. Config.Fast
//     turns all three off, for tests only.
//   - Unix socket only: the server listens on no TCP address (empty listen_addresses). Its socket
//     is mode 0700 in a directory of mode 0700, so only the server's OS user and root can
//     connect. That alone is what makes the cluster's trust authentication acceptable (initdb
//     -A trust: whoever reaches the socket may log in as any role without a password); do not
//     widen the socket's permissions or add a TCP listener without changing the authentication.
//   - It stops what it started: the postmaster runs in a process group of its own and is killed
//     if the thread that started it dies (Pdeathsig), so a crashed caller leaves no server
//     behind; Close shuts it down and waits for it; a crash is reported through Done and Wait,
//     and the lock files it leaves behind do not block the next Start.
//
// As root, initdb and the server run as the postgres OS user (initdb refuses to run as root),
// and Dir is handed to that user.
//
// Imported by cmd/enjin (`enjin up`), bench (`enjin bench ingest`), services/backup and
// test/harness. It reaches the database driver, so rings 1 and 2 never import it.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database is the database Start creates, and the one URL names.
const Database = "enjin"

// Config says where and how to run the server. Only Dir is required.
type Config struct {
	// Dir is dedicated to the server: the cluster lives in Dir/data and, when the path is
	// short enough, the unix socket in Dir itself. Start creates Dir if needed and makes it
	// mode 0700; as root it gives Dir to the postgres user, who must be able to search every
	// directory above it.
	Dir string
	// BinDir holds initdb and postgres. Empty means the newest /usr/lib/postgresql/*/bin.
	BinDir string
	// Fast turns off fsync, synchronous commit and full-page writes, for tests: a crash of
	// the machine may then lose or corrupt the cluster.
	Fast bool
	// Logger receives progress lines, and the server's last output when it exits on its
	// own. Nil discards.
	Logger *slog.Logger
}

// Server is a running postmaster started by Start.
type Server struct {
	dir       string
	socketDir string
	tmpSocket bool // socketDir was made by Start and is removed by Close
	cmd       *exec.Cmd
	out       *tail // the server's stdout and stderr
	logger    *slog.Logger

	ready     atomic.Bool   // Start has returned the server; later exits are logged
	stopping  atomic.Bool   // Close asked the server to exit
	done      chan struct{} // closed when every server process has exited
	exitErr   error         // why the server exited; set before done is closed
	closeOnce sync.Once
	closeErr  error
}

// socketName is the file name of the server's unix socket in its socket directory. The
// server's only port, 5432, names the socket; no two clusters share a socket directory.
const socketName = ".s.PGSQL.5432"

// maxSocketPath leaves room under the kernel's 108-byte limit on unix socket paths.
const maxSocketPath = 100

// Start initializes the cluster in cfg.Dir if it has none, starts the server on it and waits,
// as long as ctx allows, until it answers queries; then it creates the database "enjin" if
// missing. Crash recovery of a large cluster can take minutes, so ctx should allow for it.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	s, err := start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

func start(ctx context.Context, cfg Config) (*Server, error) {
	begin := time.Now()
	if cfg.Dir == "" {
		return nil, errors.New("no Dir configured")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bin := cfg.BinDir
	if bin == "" {
		if bin, err = findBinDir(); err != nil {
			return nil, err
		}
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	if err := prepareDir(dir, cred); err != nil {
		return nil, err
	}
	if err := initCluster(ctx, bin, dir, cred, cfg.Fast, logger); err != nil {
		return nil, err
	}
	socketDir, tmpSocket, err := makeSocketDir(dir, cred)
	if err != nil {
		return nil, err
	}
	s := &Server{
		dir:       dir,
		socketDir: socketDir,
		tmpSocket: tmpSocket,
		out:       &tail{max: 64 << 10},
		logger:    logger,
		done:      make(chan struct{}),
	}
	if err := clearStale(ctx, dir, socketDir); err != nil {
		s.removeSocketDir()
		return nil, err
	}
	if err := s.run(bin, cred, cfg.Fast); err != nil {
		s.removeSocketDir()
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		closeErr := s.Close()
		return nil, errors.Join(fmt.Errorf("server in %s not ready: %w\nserver output:\n%s",
			dir, err, s.out.last(8<<10)), closeErr)
	}
	if err := s.ensureDatabase(ctx, Database); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	s.ready.Store(true)
	logger.Info("postgres ready", "dir", dir, "pid", s.PID(), "socket", socketDir,
		"fast", cfg.Fast, "took", time.Since(begin).Round(time.Millisecond))
	return s, nil
}

// run starts the postmaster, and a goroutine that notices when it exits.
func (s *Server) run(bin string, cred *syscall.Credential, fast bool) error {
	args := []string{
		"-D", filepath.Join(s.dir, "data"),
		"-k", s.socketDir,
		"-c", "listen_addresses=",
		"-c", "unix_socket_permissions=0700",
	}
	if fast {
		args = append(args,
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off")
	}
	// The server writes into a pipe of our own rather than an io.Writer, so that exec does
	// not tie cmd.Wait to backends that outlive a killed postmaster while holding the pipe.
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), args...)
	s.cmd.Dir = s.dir
	s.cmd.Stdout = w
	s.cmd.Stderr = w
	s.cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		Setpgid:    true,            // Close can kill the server's whole process group
		Pdeathsig:  syscall.SIGKILL, // a crashed caller leaves no server behind
	}
	err = s.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return fmt.Errorf("start %s: %w", s.cmd.Path, err)
	}
	copied := make(chan struct{})
	// Ends when every server process has closed the pipe, or when watch closes r.
	go func() {
		defer close(copied)
		_, _ = io.Copy(s.out, r)
	}()
	// Ends when the postmaster has exited and its output has been read; closes done.
	go s.watch(r, copied)
	return nil
}

// watch waits for the postmaster to exit, kills the backends a crashed postmaster leaves
// behind, records why it exited and closes done.
func (s *Server) watch(r *os.File, copied <-chan struct{}) {
	err := s.cmd.Wait()
	pid := s.cmd.Process.Pid
	// After a clean shutdown the group is empty. After a crash its orphans would exit on their
	// own soon, but a new postmaster must not start on the data directory while they live.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
	}
	r.Close()
	<-copied
	requested := s.stopping.Load()
	if err != nil || !requested {
		if err == nil {
			err = errors.New("exit status 0")
		}
		s.exitErr = fmt.Errorf("postgres: server %d in %s exited: %w\nserver output:\n%s",
			pid, s.dir, err, s.out.last(8<<10))
	}
	if !requested && s.ready.Load() { // Start reports a failed start itself
		s.logger.Error("postgres exited unexpectedly", "dir", s.dir, "pid", pid, "err", err,
			"output", s.out.last(8<<10))
	}
	close(s.done)
}

// waitReady polls, with short backoff, until a connection runs SELECT 1, the server exits or
// ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	var lastErr error
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		attempt, cancel := context.WithTimeout(ctx, 2*time.Second)
		lastErr = ping(attempt, s.DatabaseURL("postgres"))
		cancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-s.done:
			return errors.New("server exited during startup")
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", context.Cause(ctx), lastErr)
		case <-time.After(wait):
		}
	}
}

func ping(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// ensureDatabase creates database name unless it exists.
func (s *Server) ensureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.DatabaseURL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to create database %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
		name).Scan(&exists)
	if err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	s.logger.Info("postgres: created database", "name", name)
	return nil
}

// URL is the pgx/libpq URL of the database "enjin" over the server's unix socket, as the
// superuser postgres.
func (s *Server) URL() string { return s.DatabaseURL(Database) }

// DatabaseURL is the URL of database name over the server's unix socket.
func (s *Server) DatabaseURL(name string) string {
	return "postgres://postgres@/" + url.PathEscape(name) +
		"?host=" + hostParam(s.socketDir) + "&sslmode=disable"
}

// hostParam leaves a plain path readable and escapes any other.
func hostParam(dir string) string {
	if strings.Trim(dir, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-") == "" {
		return dir
	}
	return url.QueryEscape(dir)
}

// SocketDir is the directory holding the server's unix socket: Dir, or a directory under
// /tmp when Dir is too long for a socket path.
func (s *Server) SocketDir() string { return s.socketDir }

// PID is the process id of the postmaster.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Done is closed when the server and all its processes have exited, whether Close stopped
// it or it crashed.
func (s *Server) Done() <-chan struct{} { return s.done }

// Wait blocks until the server has exited. It returns nil after a clean shutdown by Close,
// and otherwise says how the server ended, with its last output.
func (s *Server) Wait() error {
	<-s.done
	return s.exitErr
}

// Output is the server's most recent output (its log), at most 64 KiB.
func (s *Server) Output() string { return s.out.String() }

// Close asks the server for a fast shutdown (SIGINT: open transactions roll back and clients
// are disconnected; SIGTERM would wait for every client to leave), kills its process group if
// it has not exited within 15 s, and waits until it has. Close is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.stop() })
	return s.closeErr
}

func (s *Server) stop() error {
	s.stopping.Store(true)
	pid := s.PID()
	var err error
	select {
	case <-s.done:
	default:
		_ = syscall.Kill(pid, syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			err = fmt.Errorf("postgres: server %d in %s did not shut down within 15s; killed it",
				pid, s.dir)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-s.done
		}
	}
	return errors.Join(err, s.removeSocketDir())
}

func (s *Server) removeSocketDir() error {
	if !s.tmpSocket {
		return nil
	}
	if err := os.RemoveAll(s.socketDir); err != nil {
		return fmt.Errorf("postgres: remove socket dir: %w", err)
	}
	return nil
}
