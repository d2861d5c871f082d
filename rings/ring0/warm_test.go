package ring0

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestWarmHeapMovesThePageFaultsToTheStart runs, in two fresh processes (a heap, once
// faulted in, stays so), what ingest does after a start: with 32 MiB live, garbage
// allocated up to most of the heap goal. Without warmHeap nearly every page of it is a
// page fault; after it, few are.
func TestWarmHeapMovesThePageFaultsToTheStart(t *testing.T) {
	run := func(warm bool) (faults, pages int) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "ENJIN_WARM_CHILD="+strconv.FormatBool(warm))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child (warm %v): %v\n%s", warm, err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if _, err := fmt.Sscanf(l, "faults %d pages %d", &faults, &pages); err == nil {
				return faults, pages
			}
		}
		t.Fatalf("child (warm %v) printed no count:\n%s", warm, out)
		return 0, 0
	}
	coldFaults, pages := run(false)
	warmFaults, _ := run(true)
	t.Logf("%d pages of garbage: %d page faults cold, %d after warmHeap", pages, coldFaults, warmFaults)
	if coldFaults < pages/2 {
		t.Fatalf("cold heap: %d faults for %d fresh pages; the measure does not see faults", coldFaults, pages)
	}
	if warmFaults > pages/10 {
		t.Fatalf("after warmHeap: %d faults for %d pages; want at most a tenth", warmFaults, pages)
	}
}

// TestMain runs the test binary as the child TestWarmHeapMovesThePageFaultsToTheStart
// measures when that test asks for it, else the tests.
func TestMain(m *testing.M) {
	if v := os.Getenv("ENJIN_WARM_CHILD"); v != "" {
		warm, err := strconv.ParseBool(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		warmChild(warm)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// warmChild allocates what ingest does after a start, with or without warmHeap first,
// and prints the page faults that took.
func warmChild(warm bool) {
	debug.SetGCPercent(400)
	live := make([][]byte, 32)
	for i := range live {
		live[i] = make([]byte, 1<<20)
		touch(live[i])
	}
	runtime.GC()
	s := []rtmetrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	rtmetrics.Read(s)
	room := int(s[0].Value.Uint64()-s[1].Value.Uint64()) * 7 / 10
	if warm {
		warmHeap(slog.New(slog.DiscardHandler))
	}
	before := minorFaults()
	var sink []byte
	for n := 0; n < room; n += 64 << 10 {
		sink = make([]byte, 64<<10)
		touch(sink)
	}
	fmt.Printf("faults %d pages %d\n", minorFaults()-before, room/4096)
	runtime.KeepAlive(live)
	runtime.KeepAlive(sink)
}

func touch(b []byte) {
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
}

func minorFaults() int {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru) // cannot fail with RUSAGE_SELF
	return int(ru.Minflt)
}
