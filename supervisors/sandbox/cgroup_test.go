package sandbox_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"enjin/supervisors/sandbox"
	"enjin/test/harness"
)

// Kill empties a group whose processes keep forking, Create never shares a group that
// exists, and List names what exists.
func TestCgroupKillAndOwnership(t *testing.T) {
	prefix := "enjin-test-" + strconv.Itoa(os.Getpid())
	cg, err := sandbox.DetectCgroups(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range cgroupDirs(prefix) {
			os.Remove(d)
		}
	})
	procs, err := cg.Create("g1", sandbox.Limits{Pids: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cg.Kill("g1"); cg.Remove("g1") })
	if _, err := cg.Create("g1", sandbox.Limits{}); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second Create of g1: %v, want ErrExist", err)
	}
	// A Create that fails part way — the group exists in one controller only, as a crash can
	// leave it — removes what it made in the others, so it is not in the way of the next.
	if _, err := cg.Create("g2", sandbox.Limits{}); err != nil {
		t.Fatal(err)
	}
	g2 := groupDirs(prefix, "g2")
	if len(g2) < 2 || cg.Remove("g2") != nil {
		t.Fatalf("g2 in %v; want it in several controllers, and removed", g2)
	}
	for range 10 { // the controllers are tried in no fixed order: most tries make some first
		if err := os.Mkdir(g2[0], 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := cg.Create("g2", sandbox.Limits{}); !errors.Is(err, os.ErrExist) {
			t.Fatalf("Create of g2 existing in %s: %v, want ErrExist", g2[0], err)
		}
		if left := groupDirs(prefix, "g2"); len(left) != 1 {
			t.Fatalf("after a failed Create, g2 is in %v; want only the one made before", left)
		}
		if err := os.Remove(g2[0]); err != nil {
			t.Fatal(err)
		}
	}
	// A shell that, once in the group, starts children that fork more children forever.
	sh := exec.Command("/bin/sh", "-c", "read go; for i in 1 2 3 4; do (while :; do sleep 1000 & sleep 0.01; done) & done; wait")
	in, _ := sh.StdinPipe()
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if err := os.WriteFile(p, []byte(strconv.Itoa(sh.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in.Write([]byte("go\n"))
	var pids []int
	harness.Eventually(t, 5*time.Second, func() bool {
		pids = members(t, procs[0])
		return len(pids) > 10
	}, "the group's processes multiplying")
	t0 := time.Now()
	if err := cg.Kill("g1"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	sh.Wait()
	if left := members(t, procs[0]); len(left) != 0 {
		t.Fatalf("%d processes left in the group after Kill", len(left))
	}
	for _, pid := range pids {
		if harness.Alive(pid) {
			t.Fatalf("process %d survived Kill", pid)
		}
	}
	names, err := cg.List()
	if err != nil || len(names) != 1 || names[0] != "g1" {
		t.Fatalf("List: %v %v, want [g1]", names, err)
	}
	if err := cg.Remove("g1"); err != nil {
		t.Fatal(err)
	}
	if names, _ := cg.List(); len(names) != 0 {
		t.Fatalf("List after Remove: %v", names)
	}
	t.Logf("cgroup v%d: killed a group of %d forking processes in %v", cg.Version(), len(pids), took)
}

func members(t *testing.T, procs string) []int {
	t.Helper()
	b, err := os.ReadFile(procs)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		out = append(out, pid)
	}
	return out
}

// groupDirs are the directories of group name under prefix, in every controller.
func groupDirs(prefix, name string) []string { return cgroupDirs(prefix + "/" + name) }

// cgroupDirs are the directories at path in every controller's hierarchy.
func cgroupDirs(path string) []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + path)
	more, _ := filepath.Glob("/sys/fs/cgroup/*/*/*/" + path) // memory sits deeper here
	return append(dirs, more...)
}
