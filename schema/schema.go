// Package schema holds the inventory's PostgreSQL migrations as plain .sql files, embedded in
// the binary and numbered in the order they apply (0001_name.sql, 0002_…). Each migration is
// applied once, in its own transaction, by the inventory service, which records it in
// schema_migrations; applying is idempotent.
//
// schema contains no Go logic beyond listing the files: reviewers read real SQL. Only the
// inventory service (services/inventory) executes it.
package schema

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed *.sql
var files embed.FS

// Migration is one numbered .sql file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns every migration in version order. Versions must be unique and start at 1
// without gaps.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	var ms []Migration
	for _, n := range names {
		num, rest, ok := strings.Cut(n, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("schema: %s: name must be NNNN_name.sql", n)
		}
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(rest, ".sql"), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("schema: migration %d (%s): want version %d", m.Version, m.Name, i+1)
		}
	}
	return ms, nil
}
