package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throwaway PostgreSQL cluster owned by one test. It listens only on a unix
// socket in SocketDir and trusts every local connection as the superuser postgres.
type Postgres struct {
	Dir       string // temporary directory holding the cluster; removed at cleanup
	SocketDir string // directory of the server's unix socket
	URL       string // pgx/libpq URL of the postgres database over the unix socket

	bin  string // directory of initdb and postgres
	cmd  *exec.Cmd
	done chan struct{} // closed when the postmaster has exited and been reaped
	log  *syncBuffer   // the server's stderr
	dbs  atomic.Int64  // counter for generated database names
}

// StartPostgres initializes a fresh cluster in a new directory under /tmp, starts a server on
// it with durability turned off, and waits until it accepts connections. The server is shut
// down and the directory removed at cleanup. As root, the cluster runs as the postgres user,
// since initdb refuses to run as root.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin, err := postgresBinDir()
	if err != nil {
		t.Fatal(err)
	}

	// Not t.TempDir: its parent is 0700 to root, and the socket path must stay short.
	dir, err := os.MkdirTemp("/tmp", "enjin-pg-")
	if err != nil {
		t.Fatalf("postgres: make cluster dir: %v", err)
	}
	p := &Postgres{
		Dir:       dir,
		SocketDir: dir,
		bin:       bin,
		done:      make(chan struct{}),
		log:       &syncBuffer{},
	}
	p.URL = p.urlFor("postgres")
	removeDir := func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("postgres: remove %s: %v", dir, err)
		}
	}

	cred, err := postgresCredential()
	if err != nil {
		removeDir()
		t.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			removeDir()
			t.Fatalf("postgres: chown %s to postgres: %v", dir, err)
		}
	}

	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := initdb.CombinedOutput(); err != nil {
		removeDir()
		t.Fatalf("postgres: initdb: %v\n%s", err, out)
	}

	p.cmd = exec.Command(filepath.Join(bin, "postgres"),
		"-D", data, "-k", dir,
		"-c", "listen_addresses=",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off")
	p.cmd.Dir = dir
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		Pdeathsig:  syscall.SIGKILL,
		Setpgid:    true,
	}
	if err := p.cmd.Start(); err != nil {
		removeDir()
		t.Fatalf("postgres: start server: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("postgres server log (%s):\n%s", dir, p.log.Tail(8<<10))
		}
		removeDir()
	})

	if err := p.waitReady(20 * time.Second); err != nil {
		t.Fatalf("postgres: %v\nserver log:\n%s", err, p.log.String())
	}
	return p
}

// PID is the process id of the postmaster.
func (p *Postgres) PID() int { return p.cmd.Process.Pid }

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
	return p.urlFor(name)
}

// urlFor is the URL of database name over the cluster's unix socket.
func (p *Postgres) urlFor(name string) string {
	// The socket directory is a plain path from os.MkdirTemp; left unescaped for readability.
	return "postgres://postgres@/" + url.PathEscape(name) + "?host=" + p.SocketDir + "&sslmode=disable"
}

// waitReady polls with short backoff until a connection can run SELECT 1, the server exits,
// or timeout passes.
func (p *Postgres) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		select {
		case <-p.done:
			return fmt.Errorf("server exited during startup: %v", p.cmd.ProcessState)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		lastErr = ping(ctx, p.URL)
		cancel()
		if lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready after %v: %v", timeout, lastErr)
		}
		select {
		case <-p.done:
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

// stop asks the postmaster for a fast shutdown (SIGINT: roll back open transactions and
// disconnect clients; SIGTERM would be a smart shutdown that waits for every client to leave),
// and kills its whole process group if it has not exited within 10 s.
func (p *Postgres) stop(t testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGINT)
	select {
	case <-p.done:
		return
	case <-time.After(10 * time.Second):
	}
	t.Errorf("postgres: server %d did not shut down within 10s; killing it", pid)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("postgres: server %d survived SIGKILL", pid)
	}
}

// postgresBinDir finds the newest installed server's bin directory.
func postgresBinDir() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	var dirs []string
	for _, initdb := range found {
		dir := filepath.Dir(initdb)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			dirs = append(dirs, dir)
		}
	}
	if len(dirs) == 0 {
		return "", errors.New("postgres: no server binaries under /usr/lib/postgresql/*/bin; " +
			"install them with `apt-get install postgresql` (./test/run does this)")
	}
	slices.SortFunc(dirs, func(a, b string) int {
		return compareVersions(filepath.Base(filepath.Dir(a)), filepath.Base(filepath.Dir(b)))
	})
	return dirs[len(dirs)-1], nil
}

// compareVersions orders dotted version numbers such as "9.6" < "15" < "16".
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return strings.Compare(a, b)
}

// postgresCredential is the identity to run initdb and the server under: the postgres user
// when running as root, or nil (the current user) otherwise.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("postgres: running as root needs the postgres user to run the server "+
			"(`apt-get install postgresql` creates it): %v", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres: uid %q: %v", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres: gid %q: %v", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail is at most the last n bytes written.
func (b *syncBuffer) Tail(n int) string {
	s := b.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
