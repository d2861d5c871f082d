package vmhost

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// hostReserveMB is the least memory kept back from VMs for the host itself: ring 1, the
// apps, libvirtd and QEMU's own overhead per guest.
const hostReserveMB = 1024

// MemoryMB is the memory the host offers its VMs in all, in MiB: Config.MemoryMB, or else
// the host's memory less an eighth of it (at least hostReserveMB). VMs' memory is not
// overcommitted: ring 0 places a VM only while the VMs of the node fit in this.
func (h *Host) MemoryMB() int64 {
	if h.cfg.MemoryMB > 0 {
		return h.cfg.MemoryMB
	}
	total := memTotalMB()
	return max(0, total-max(hostReserveMB, total/8))
}

// memTotalMB is MemTotal from /proc/meminfo, in MiB; 0 if it cannot be read.
func memTotalMB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb / 1024
		}
	}
	return 0
}
