package postgres_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"enjin/services/postgres"
)

// Running finds a server by its cluster's postmaster.pid; Dump and Restore carry a database
// into a fresh one; a password in the URL goes through a passfile that is removed after;
// a dump that is not one is refused and leaves the target as it was.
func TestDumpRestore(t *testing.T) {
	dirA := tempDir(t)
	if _, err := postgres.Running(dirA); !errors.Is(err, postgres.ErrNotRunning) {
		t.Fatalf("Running with no cluster: %v, want ErrNotRunning", err)
	}
	a := start(t, postgres.Config{Dir: dirA, Fast: true})
	exec(t, a.URL(), `CREATE TABLE things (id int PRIMARY KEY, name text); INSERT INTO things VALUES (1, 'kept'), (2, 'also')`)
	url, err := postgres.Running(dirA)
	if err != nil || url != a.URL() {
		t.Fatalf("Running: %q %v, want %q", url, err, a.URL())
	}
	var dump bytes.Buffer
	withPassword := strings.Replace(url, "postgres@", "postgres:s3cr%3At@", 1) // trust auth ignores it
	if err := postgres.Dump(t.Context(), "", withPassword, &dump); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(dump.Bytes(), []byte("PGDMP")) {
		t.Fatalf("the dump starts %q, want pg_dump's custom format", dump.Bytes()[:min(16, dump.Len())])
	}
	if left, _ := filepath.Glob("/tmp/enjin-pgpass-*"); len(left) != 0 {
		t.Fatalf("passfiles left: %v", left)
	}
	exec(t, a.DatabaseURL("postgres"), `CREATE DATABASE fresh`)
	fresh := a.DatabaseURL("fresh")
	if err := postgres.Restore(t.Context(), "", fresh, bytes.NewReader([]byte("PGDMP not really"))); err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("restore of a bad dump: %v, want one line", err)
	}
	if err := postgres.Restore(t.Context(), "", fresh, &dump); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, fresh, `SELECT string_agg(name, ',' ORDER BY id) FROM things`); got != "kept,also" {
		t.Fatalf("restored rows: %q", got)
	}
}
