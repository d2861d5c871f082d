package harness

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// CopyKeys copies a state directory's keys/ into another, modes kept: what an operator does
// to give a new ring 0 member the trust chain.
func CopyKeys(t testing.TB, from, to string) {
	t.Helper()
	src := filepath.Join(from, "keys")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(to, "keys", rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(dst, info.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}
