package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"enjin/test/harness"
)

// TestReadmeCluster runs the README's ring 0 cluster lines as written, in a directory of
// their own, with two substitutions: a throwaway PostgreSQL for postgres:///enjin, and free
// ports for the ones written (which `enjin up` holds while TestReadme runs). Both members
// come up routed to each other and one of them leads.
func TestReadmeCluster(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(moduleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := readmeBlocks(string(readme))
	var cluster []string
	for _, l := range lines {
		if strings.Contains(l, "var/r0-") {
			cluster = append(cluster, l)
		}
	}
	if len(cluster) != 4 {
		t.Fatalf("README: %d ring 0 cluster lines, want 4 (init, two members, the leader): %q", len(cluster), cluster)
	}
	dir := t.TempDir()
	if err := os.Symlink(harness.Binary(t), filepath.Join(dir, "enjin")); err != nil {
		t.Fatal(err)
	}
	subs := []string{"postgres:///enjin", "'" + harness.StartPostgres(t).CreateDatabase(t, "") + "'"}
	for _, port := range []string{"6222", "6223", "4222", "4223", "7070", "7071"} {
		subs = append(subs, "127.0.0.1:"+port, "127.0.0.1:"+strconv.Itoa(harness.FreePort(t)),
			"--nats-port "+port, "--nats-port "+strconv.Itoa(harness.FreePort(t)))
	}
	r := strings.NewReplacer(subs...)
	for _, l := range cluster {
		l = r.Replace(strings.TrimSpace(stripComment(l)))
		if bg, ok := strings.CutSuffix(l, "&"); ok {
			cmd := exec.Command("bash", "-c", "exec "+strings.TrimSpace(bg))
			cmd.Dir = dir
			harness.Adopt(t, cmd)
			continue
		}
		var out []byte
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			cmd := exec.Command("bash", "-c", l)
			cmd.Dir = dir
			out, err = cmd.CombinedOutput()
			// A member answers before one of them leads: ask again until one does.
			if err == nil && (!strings.HasPrefix(l, "curl") || strings.Contains(string(out), `"member":"r0-`)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("README line %q: %v %s", l, err, out)
			}
		}
		if strings.HasPrefix(l, "curl") && !strings.Contains(string(out), `"member":"r0-`) {
			t.Fatalf("%s: %s; want a member r0-… leading", l, out)
		}
		t.Logf("%s\n%s", l, out)
	}
}
