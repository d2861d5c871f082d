package ring0

import (
	"log/slog"
	"runtime"
	rtmetrics "runtime/metrics"
	"time"
)

// warmFleet is how many nodes make ring 0 warm its heap at its start: a fleet whose
// reconnecting burst is large enough for page faults to matter.
const warmFleet = 10000

// warmHeap faults in, at ring 0's start while nothing is offered yet, the memory its heap
// grows to under load: the heap goal (GOGC 400 of what the node keys hold, within the
// memory budget) less what is in use. Without it the first burst after a start — every
// node of a large fleet reconnecting at once — pays for it: at 100,000 nodes about 300 MiB
// of fresh pages, some 80,000 page faults that cost ring 0 a third of a core for the first
// two or three seconds, when its commits could least spare it (ack p99 above 1 s, and
// deferrals). Once faulted in, the pages stay: the runtime keeps freed memory up to the
// goal rather than returning it. A cloud under warmFleet nodes skips it: its heap grows little.
func warmHeap(log *slog.Logger) {
	start := time.Now()
	runtime.GC() // the goal follows what is live now: the loaded keys
	s := []rtmetrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	rtmetrics.Read(s)
	goal, used := s[0].Value.Uint64(), s[1].Value.Uint64()
	if goal <= used {
		return
	}
	// Up to nine tenths of the room, so that the chunks held meanwhile do not push the heap
	// against the memory limit.
	const chunk = 1 << 20
	n := int((goal - used) * 9 / 10 / chunk)
	held := make([][]byte, 0, n)
	for range n {
		b := make([]byte, chunk)
		for i := 0; i < len(b); i += 4096 { // a fresh page is faulted in when first written
			b[i] = 1
		}
		held = append(held, b)
	}
	runtime.KeepAlive(held) // every chunk held until all are touched; garbage from here
	runtime.GC()
	log.Info("heap warmed", "mib", n, "goal_mib", goal>>20, "took", time.Since(start))
}
