package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The limits file and the uid range: what the file leaves out keeps the defaults; a mistake is
// a usage error naming the problem.
func TestLimitsOf(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	pol, first, count, err := limitsOf(write("ok.json", `{"default":{"memory_mb":128},"max_tenant_instances":5}`), "300000:1000")
	if err != nil || pol.Default.MemoryMB != 128 || pol.Default.Pids != 256 || pol.MaxTenantInstances != 5 || pol.Max.MemoryMB != 4096 || first != 300000 || count != 1000 {
		t.Fatalf("limitsOf: %+v %d %d %v", pol, first, count, err)
	}
	for _, c := range []struct{ limits, uids string }{
		{write("unknown.json", `{"defaults":{}}`), ""},
		{write("notjson.json", `{`), ""},
		{write("over.json", `{"default":{"memory_mb":8192}}`), ""}, // above the maximum
		{filepath.Join(dir, "missing.json"), ""},
		{"", "5:10"},
		{"", "300000"},
		{"", "300000:0"},
		{"", "x:y"},
	} {
		_, _, _, err := limitsOf(c.limits, c.uids)
		var u usageError
		if !errors.As(err, &u) {
			t.Errorf("limitsOf(%s, %q) = %v, want a usage error", filepath.Base(c.limits), c.uids, err)
		}
	}
}
