package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// enjin builds the binary once per test run.
func enjin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "enjin")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func runCmd(bin string, args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return o.String(), e.String(), code
}

func TestInitTwiceKeepsKeys(t *testing.T) {
	bin := enjin(t)
	dir := filepath.Join(t.TempDir(), "state")
	out1, errOut, code := runCmd(bin, "init", "--state-dir", dir)
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	seeds := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".seed") {
			seeds[p], _ = os.ReadFile(p)
			if fi, _ := d.Info(); fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v", p, fi.Mode().Perm())
			}
		}
		return err
	})
	if len(seeds) != 10 {
		t.Fatalf("%d seeds after init, want 10", len(seeds))
	}
	out2, _, code := runCmd(bin, "init", "--state-dir", dir)
	if code != 0 || out1 != out2 {
		t.Fatalf("second init: exit %d, output changed:\n%s\nvs\n%s", code, out1, out2)
	}
	for p, b := range seeds {
		if now, _ := os.ReadFile(p); !bytes.Equal(now, b) {
			t.Errorf("%s changed", p)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "keys")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("keys dir: %v %v", err, fi)
	}
}

func TestCLIErrorsAreOneLine(t *testing.T) {
	bin := enjin(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"bogus"}, 2},
		{[]string{"init", "--state-dir"}, 2},
		{[]string{"init", "--nope"}, 2},
		{[]string{"init", "extra"}, 2},
		{[]string{"bench", "nope"}, 2},
		{[]string{"init", "--state-dir", "/proc/enjin-cannot-write"}, 1},
		{[]string{"nodes", "--state-dir", "/nonexistent"}, 1},
		{[]string{"nodes", "-o", "yaml"}, 2},
		{[]string{"verify", "--state-dir", "/nonexistent"}, 1},
		{[]string{"creds", "root"}, 2},
		{[]string{"compartments", "create", "--label", "x"}, 2},
		{[]string{"compartments", "delete"}, 2},
		{[]string{"ring0"}, 2},
		{[]string{"ring0", "--database-url", "postgres://x", "--ring1", "A.B"}, 2},
		{[]string{"ring1"}, 2},
		{[]string{"ring1", "--join", "tok"}, 2},
		{[]string{"up", "--log-level", "loud"}, 2},
	} {
		_, errOut, code := runCmd(bin, tc.args...)
		if code != tc.code || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "enjin: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line", tc.args, code, errOut, tc.code)
		}
	}
	for _, args := range [][]string{{"--help"}, {"init", "--help"}, {"bench", "--help"}, {"bench", "verify", "--help"},
		{"bench", "ingest", "--help"}, {"up", "--help"}, {"ring0", "--help"}, {"ring1", "--help"}, {"nodes", "--help"},
		{"compartments", "--help"}, {"compartments", "create", "--help"}, {"creds", "--help"}, {"creds", "ops", "--help"},
		{"verify", "--help"}} {
		out, errOut, code := runCmd(bin, args...)
		if code != 0 || !strings.Contains(out, "usage: enjin") || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}
