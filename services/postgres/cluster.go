package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// findBinDir finds the newest installed server's bin directory.
func findBinDir() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	var dirs []string
	for _, initdb := range found {
		dir := filepath.Dir(initdb)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			dirs = append(dirs, dir)
		}
	}
	if len(dirs) == 0 {
		return "", errors.New("no server binaries under /usr/lib/postgresql/*/bin; " +
			"install them with `apt-get install postgresql`")
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

// serverCredential is the identity to run initdb and the server under: the postgres user
// when running as root, or nil (the current user) otherwise.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("as root the server runs as the postgres user "+
			"(`apt-get install postgresql` creates it): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid %q of user postgres: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid %q of user postgres: %w", u.Gid, err)
	}
	// No supplementary groups: exec then drops root's, and searchable checks only uid and gid.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// prepareDir makes dir, mode 0700, owned by the server's user.
func prepareDir(dir string, cred *syscall.Credential) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	if cred == nil {
		return nil
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("give %s to user postgres: %w", dir, err)
	}
	return searchable(dir, cred)
}

// searchable checks that the server's user can reach dir through every directory above it,
// since initdb and postgres fail later with a less helpful message.
func searchable(dir string, cred *syscall.Credential) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	for p := filepath.Dir(real); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		var ok bool
		switch {
		case st.Uid == cred.Uid:
			ok = mode&0o100 != 0
		case st.Gid == cred.Gid:
			ok = mode&0o010 != 0
		default:
			ok = mode&0o001 != 0
		}
		if !ok {
			return fmt.Errorf("user postgres cannot reach %s: %s is mode %#o, owner %d:%d; "+
				"make it searchable (chmod o+x %s) or choose a Dir elsewhere",
				dir, p, mode, st.Uid, st.Gid, p)
		}
		if p == "/" {
			return nil
		}
	}
}

// initCluster runs initdb unless dir/data holds a cluster already. initdb works in a
// scratch directory that is renamed to data when it succeeds, so an interrupted initdb never
// leaves a half-made cluster that a later Start would take for a whole one.
func initCluster(ctx context.Context, bin, dir string, cred *syscall.Credential, fast bool, logger *slog.Logger) error {
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s exists but holds no cluster (no PG_VERSION); move it away", data)
	}
	begin := time.Now()
	scratch := filepath.Join(dir, "data.initdb")
	if err := os.RemoveAll(scratch); err != nil {
		return err
	}
	args := []string{"-D", scratch, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"}
	if fast {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, lastBytes(out, 8<<10))
	}
	if err := os.Rename(scratch, data); err != nil {
		return err
	}
	if !fast {
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	logger.Info("postgres: initialized cluster", "dir", data,
		"took", time.Since(begin).Round(time.Millisecond))
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// makeSocketDir returns dir itself if a socket path in it is short enough, or else a new
// directory under /tmp, mode 0700 and owned by the server's user.
func makeSocketDir(dir string, cred *syscall.Credential) (socketDir string, tmp bool, err error) {
	if len(filepath.Join(dir, socketName)) <= maxSocketPath {
		return dir, false, nil
	}
	socketDir, err = os.MkdirTemp("/tmp", "enjin-pg-")
	if err != nil {
		return "", false, err
	}
	if cred != nil {
		if err := os.Chown(socketDir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.Remove(socketDir)
			return "", false, fmt.Errorf("give %s to user postgres: %w", socketDir, err)
		}
	}
	return socketDir, true, nil
}

// clearStale makes way for a new postmaster on dir/data after an earlier one was killed. It
// refuses if that postmaster still runs, waits (as long as ctx allows, at most 10 s) for
// backends it left behind to exit, and then removes the lock files it left: the server itself
// would refuse to start if their process id now belonged to another live process.
func clearStale(ctx context.Context, dir, socketDir string) error {
	data, err := filepath.EvalSymlinks(filepath.Join(dir, "data"))
	if err != nil {
		return err
	}
	pidFile := filepath.Join(data, "postmaster.pid")
	pid, err := lockPID(pidFile)
	if err != nil {
		return err
	}
	if pid > 0 && alive(pid) && cwdIs(pid, data) {
		return fmt.Errorf("already running on %s (pid %d)", dir, pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		users := processesIn(data)
		if len(users) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of an earlier server still use %s; stop them first",
				users, data)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(wait):
		}
	}
	for _, f := range []string{pidFile, filepath.Join(socketDir, socketName+".lock")} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale lock file: %w", err)
		}
	}
	return nil
}

// lockPID is the process id on the first line of a postgres lock file, or 0 if there is none.
func lockPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	pid, err := strconv.Atoi(strings.TrimSpace(string(line)))
	if err != nil || pid <= 0 {
		return 0, nil // a lock file cut short by a crash names no process
	}
	return pid, nil
}

// alive reports whether process pid exists. EPERM means it does, under another user.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// cwdIs reports whether process pid works in dir, as every postgres process of a cluster
// works in its data directory.
func cwdIs(pid int, dir string) bool {
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	return err == nil && cwd == dir
}

// processesIn lists the processes working in dir, other than this one.
func processesIn(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if cwdIs(pid, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max { // trim now and then rather than on every write
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return t.last(t.max) }

// last is at most the last n bytes written.
func (t *tail) last(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(lastBytes(t.buf, n))
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return append([]byte("…"), b[len(b)-n:]...)
	}
	return b
}
