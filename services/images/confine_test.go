package images

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeQemuImg answers --version, and otherwise reports what it may do: its ids, PID and
// network namespace, limits and environment, whether it can read the file named by its
// second argument by path and the one on descriptor 3; then it leaves a process behind.
const fakeQemuImg = `#!/bin/sh
case "$1" in
--version) echo "fake qemu-img"; exit 0 ;;
hang) sleep 100; exit 0 ;;
esac
echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) pid=$$ net=$(readlink /proc/self/ns/net) as=$(ulimit -v) fsize=$(ulimit -f) env=$(env | grep -vc '^PWD=\|^SHLVL=\|^_=')"
if cat "$2" >/dev/null 2>&1; then echo path=readable; else echo path=denied; fi
if head -c 4 /dev/fd/3 >/dev/null 2>&1; then echo fd=readable; else echo fd=denied; fi
sleep 100 &
`

// TestToolIsConfined runs a stand-in for qemu-img the way every qemu-img run is made: as the
// unprivileged uid with no other groups, as the init of its own PID namespace, in a network
// namespace of its own, under its limits, with an empty environment, reaching the upload
// through its descriptor and not by its path — and whatever it leaves behind dies with it.
func TestToolIsConfined(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("confinement needs root, as ring 0 runs: run the tests as root (./test/run does)")
	}
	bin, err := os.MkdirTemp("/tmp", "enjin-fakeqemu-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bin) })
	os.Chmod(bin, 0o755)
	script := filepath.Join(bin, "qemu-img")
	if err := os.WriteFile(script, []byte(fakeQemuImg), 0o755); err != nil {
		t.Fatal(err)
	}
	// A uid of this test's own: other packages' tests run qemu-img as DefaultUID meanwhile,
	// and the count of what outlived the run below must be this run's alone.
	toolUID := DefaultUID - 1 - os.Getpid()%100000
	s, err := New(Config{Dir: filepath.Join(t.TempDir(), "images"), QemuImg: script, ToolTimeout: 2 * time.Second, ToolMemory: 512 << 20,
		UID: uint32(toolUID)})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := s.stage()
	if err != nil {
		t.Fatal(err)
	}
	f, _, _, err := receive(dir, "upload", strings.NewReader("QFI\xfb and more"), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	res, err := s.tool.run(t.Context(), invocation{args: []string{"probe", f.Name()}, files: []*os.File{f}})
	if err != nil || res.failed() {
		t.Fatalf("run: %v, %+v (%s)", err, res, res.stderr)
	}
	ourNet, _ := os.Readlink("/proc/self/ns/net")
	got := string(res.stdout)
	uid := strconv.Itoa(toolUID)
	for _, want := range []string{"uid=" + uid + " ", "gid=" + uid + " ", "groups=" + uid + " ", "pid=1 ",
		fmt.Sprintf("as=%d ", 512<<10), "fsize=0 ", "env=1\n", "path=denied", "fd=readable"} {
		if !strings.Contains(got, want) {
			t.Errorf("the tool reports %q; want %q in it", got, want)
		}
	}
	if strings.Contains(got, "net="+ourNet) {
		t.Errorf("the tool shares our network namespace: %q", got)
	}
	if left := processesOf(toolUID); len(left) > 0 {
		t.Errorf("processes of uid %d outlived the run: %v", toolUID, left)
	}

	start := time.Now()
	res, err = s.tool.run(t.Context(), invocation{args: []string{"hang"}})
	if err != nil || !res.timedOut || time.Since(start) > 10*time.Second {
		t.Fatalf("a hanging run: %v, %+v after %v; want it stopped at its 2 s timeout", err, res, time.Since(start))
	}
	if !strings.Contains(res.why(), "took too long") {
		t.Errorf("why: %q", res.why())
	}
}

// processesOf lists the pids of processes whose real uid is uid.
func processesOf(uid int) []string {
	ents, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" && f[1] == strconv.Itoa(uid) {
				pids = append(pids, e.Name())
			}
		}
	}
	return pids
}
