package guest

import (
	"bufio"
	"bytes"
	"io/fs"
	"strconv"
	"strings"
)

// stats reads what a VM says about itself from the guest kernel's /proc: the whole machine,
// since the VM is the node, not the agent process.
type stats struct {
	proc      fs.FS
	busy, all uint64 // jiffies at the previous cpu call, summed over all CPUs
	primed    bool   // busy and all hold a sample
}

// cpu is how many cores' worth the machine used since the previous call (0 the first time).
func (s *stats) cpu() float64 {
	busy, all, cpus, ok := cpuTimes(s.proc)
	if !ok {
		return 0
	}
	frac := 0.0
	if s.primed && all > s.all && busy >= s.busy {
		frac = float64(busy-s.busy) / float64(all-s.all) * float64(cpus)
	}
	s.busy, s.all, s.primed = busy, all, true
	return frac
}

// cpuTimes sums the first line of /proc/stat: busy is everything but idle and iowait.
func cpuTimes(proc fs.FS) (busy, all uint64, cpus int, ok bool) {
	b, err := fs.ReadFile(proc, "stat")
	if err != nil {
		return 0, 0, 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) > 4 && f[0] == "cpu":
			for i, v := range f[1:min(len(f), 9)] { // user … steal; guest time is in user already
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return 0, 0, 0, false
				}
				all += n
				if i != 3 && i != 4 {
					busy += n
				}
			}
			ok = true
		case len(f) > 0 && strings.HasPrefix(f[0], "cpu"):
			cpus++
		}
	}
	return busy, all, max(cpus, 1), ok
}

// memUsed is the memory in use: MemTotal less MemAvailable, in bytes, or 0 if unknown.
func memUsed(proc fs.FS) uint64 {
	b, err := fs.ReadFile(proc, "meminfo")
	if err != nil {
		return 0
	}
	var total, avail uint64
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total = n
		case "MemAvailable:":
			avail = n
		}
	}
	if avail > total {
		return 0
	}
	return (total - avail) << 10
}

// firstFloat is the first field of a small /proc file (uptime, loadavg), or 0.
func firstFloat(proc fs.FS, name string) float64 {
	b, err := fs.ReadFile(proc, name)
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v < 0 {
		return 0
	}
	return v
}
