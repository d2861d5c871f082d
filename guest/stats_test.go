package guest

import (
	"testing"
	"testing/fstest"
)

func TestStats(t *testing.T) {
	proc := fstest.MapFS{
		"stat":    {Data: []byte("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 50 0 50 350 50 0 0 0 0 0\ncpu1 50 0 50 350 50 0 0 0 0 0\nintr 1\n")},
		"meminfo": {Data: []byte("MemTotal:  1000 kB\nMemAvailable:  400 kB\n")},
		"uptime":  {Data: []byte("3.5 6.0\n")},
	}
	s := stats{proc: proc}
	if got := s.cpu(); got != 0 {
		t.Errorf("first cpu sample: got %v want 0", got)
	}
	// 1000 more jiffies over both CPUs, 500 of them busy: one core's worth of two.
	proc["stat"] = &fstest.MapFile{Data: []byte("cpu  400 0 300 1100 200 0 0 0 0 0\ncpu0 1 0 1 1 1\ncpu1 1 0 1 1 1\n")}
	if got := s.cpu(); got != 1 {
		t.Errorf("cpu: got %v want 1 (core)", got)
	}
	if got := memUsed(proc); got != 600<<10 {
		t.Errorf("memUsed: got %d want %d", got, 600<<10)
	}
	if got := firstFloat(proc, "uptime"); got != 3.5 {
		t.Errorf("uptime: got %v want 3.5", got)
	}
	for name, data := range map[string]string{"stat": "cpu  x y\n", "meminfo": "MemTotal: 1 kB\nMemAvailable: 5 kB\n", "uptime": "-1 0\n", "loadavg": ""} {
		proc[name] = &fstest.MapFile{Data: []byte(data)}
	}
	if s.cpu() != 0 || memUsed(proc) != 0 || firstFloat(proc, "uptime") != 0 || firstFloat(proc, "loadavg") != 0 || firstFloat(proc, "missing") != 0 {
		t.Error("malformed /proc files: want zeros")
	}
}
