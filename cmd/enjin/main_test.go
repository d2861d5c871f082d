package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// binary is the enjin command built once for the tests that need a real process: exit
// statuses as the shell sees them, the working directory, the build info.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "enjin-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "enjin")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runBinary runs the built enjin in dir ("" for this one).
func runBinary(dir string, args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return o.String(), e.String(), code
}

func TestInitTwiceKeepsKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	out1, errOut, code := runBinary("", "init", "--state-dir", dir)
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
	out2, _, code := runBinary("", "init", "--state-dir", dir)
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

// TestExitStatus checks, on the real process, the exit status and the one line on stderr.
func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"bogus"}, 2},
		{[]string{"init", "--nope"}, 2},
		{[]string{"apps", "deploy"}, 2},
		{[]string{"ring1", "--join", "abc", "--ring0", "http://127.0.0.1:1"}, 2},
		{[]string{"nodes", "--state-dir", "/nonexistent"}, 1},
		{[]string{"init", "--state-dir", "/proc/enjin-cannot-write"}, 1},
	} {
		_, errOut, code := runBinary("", tc.args...)
		if code != tc.code || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "enjin: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line", tc.args, code, errOut, tc.code)
		}
	}
}

func TestVersion(t *testing.T) {
	want := regexp.MustCompile(`^enjin \S+ \((unknown revision|[0-9a-f]{12})(, modified)?\) ` + regexp.QuoteMeta(runtime.Version()) + "\n$")
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, errOut, code := runBinary("", args...)
		if code != 0 || errOut != "" || !want.MatchString(out) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %v", args, code, out, errOut, want)
		}
	}
}

// TestRelativeStateDir runs client commands in another working directory with a relative
// --state-dir: the cloud is found through it, and it is made absolute before use.
func TestRelativeStateDir(t *testing.T) {
	api := newFakeAPI(t, nil)
	root := t.TempDir()
	state := filepath.Join(root, "cloud", "state")
	fakeCloud(t, state, api.URL, "")
	elsewhere := filepath.Join(root, "elsewhere")
	os.Mkdir(elsewhere, 0o755)

	if _, errOut, code := runBinary(elsewhere, "nodes", "--state-dir", "../cloud/state"); code != 0 {
		t.Fatalf("nodes: exit %d: %s", code, errOut)
	}
	reqs := api.requests()
	if len(reqs) != 1 || reqs[0].Path != "/v1/nodes" || reqs[0].Header.Get("Authorization") != "Bearer admin-secret" {
		t.Fatalf("requests %+v; want one GET /v1/nodes with the admin token", reqs)
	}
	_, errOut, code := runBinary(elsewhere, "nodes", "--state-dir", "../cloud/missing")
	if want := filepath.Join(root, "cloud", "missing", "endpoints.json"); code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("missing state dir: exit %d, stderr %q; want 1 and the absolute path %s", code, errOut, want)
	}
	out, errOut, code := runBinary(elsewhere, "init", "--state-dir", "../cloud/state")
	if want := "trust chain in " + filepath.Join(state, "keys") + "\n"; code != 0 || !strings.HasPrefix(out, want) {
		t.Errorf("init: exit %d, stdout %q, stderr %q; want it to start %q", code, out, errOut, want)
	}
}
