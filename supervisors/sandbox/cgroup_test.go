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
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + prefix)
		more, _ := filepath.Glob("/sys/fs/cgroup/*/*/*/" + prefix) // memory sits deeper here
		for _, d := range append(dirs, more...) {
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
