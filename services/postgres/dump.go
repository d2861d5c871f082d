package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNotRunning is returned by Running when no server runs on a cluster.
var ErrNotRunning = errors.New("no server runs on the cluster")

// Running returns the URL of database "enjin" of the server that runs on the cluster in dir
// (a Config.Dir), read from its postmaster.pid, whoever started it; ErrNotRunning if none.
func Running(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return "", ErrNotRunning
	} else if err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	// Lines: pid, data directory, start time, port, socket directory, listen address, …
	lines := strings.Split(string(b), "\n")
	pid, _ := lockPID(filepath.Join(dir, "data", "postmaster.pid"))
	if len(lines) < 5 || pid == 0 || !alive(pid) || strings.TrimSpace(lines[4]) == "" {
		return "", ErrNotRunning
	}
	s := &Server{socketDir: strings.TrimSpace(lines[4])}
	if _, err := os.Stat(filepath.Join(s.socketDir, socketName)); err != nil {
		return "", ErrNotRunning // still starting, or stopping
	}
	return s.URL(), nil
}

// Dump writes a dump of the database at dbURL, in pg_dump's custom format, to w, with the
// pg_dump of binDir (empty: the newest installed server's). A password in dbURL goes to
// pg_dump in a passfile, never on its command line or in its environment.
func Dump(ctx context.Context, binDir, dbURL string, w io.Writer) error {
	if err := tool(ctx, binDir, "pg_dump", dbURL, nil, w, "--format=custom", "--no-owner"); err != nil {
		return fmt.Errorf("postgres: dump: %w", err)
	}
	return nil
}

// Restore loads a dump made by Dump, read from r, into the database at dbURL, in one
// transaction: it stops at the first error and then leaves the database as it was.
func Restore(ctx context.Context, binDir, dbURL string, r io.Reader) error {
	err := tool(ctx, binDir, "pg_restore", dbURL, r, io.Discard,
		"--no-owner", "--exit-on-error", "--single-transaction")
	if err != nil {
		return fmt.Errorf("postgres: restore: %w", err)
	}
	return nil
}

// tool runs pg_dump or pg_restore on the database at dbURL.
func tool(ctx context.Context, binDir, name, dbURL string, stdin io.Reader, stdout io.Writer, args ...string) error {
	if binDir == "" {
		var err error
		if binDir, err = findBinDir(); err != nil {
			return err
		}
	}
	u, err := url.Parse(dbURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return errors.New("the database URL is not a postgres:// URL")
	}
	env := append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	if pw, ok := u.User.Password(); ok {
		pass, err := passfile(pw)
		if err != nil {
			return err
		}
		defer os.Remove(pass)
		u.User = url.User(u.User.Username())
		env = append(env, "PGPASSFILE="+pass)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), append(args, "--dbname="+u.String())...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Env = stdin, stdout, &stderr, env
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i > 0 {
			msg = msg[:i]
		}
		return fmt.Errorf("%s: %w: %s", name, err, msg)
	}
	return nil
}

// passfile writes a libpq passfile (0600) giving password to any server, database and user.
func passfile(password string) (string, error) {
	f, err := os.CreateTemp("", "enjin-pgpass-")
	if err != nil {
		return "", fmt.Errorf("passfile: %w", err)
	}
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(password)
	_, err = f.WriteString("*:*:*:*:" + esc + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("passfile: %w", err)
	}
	return f.Name(), nil // CreateTemp makes it 0600
}
