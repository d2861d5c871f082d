package vmhost

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"enjin"
)

// hostReserveMB is the least memory kept back from VMs for the host itself: ring 1, the
// apps, libvirtd and QEMU's own overhead per guest.
const hostReserveMB = 1024

// MemoryMB is the memory the host offers its VMs in all, in MiB: Config.MemoryMB, or else
// the host's memory less an eighth of it (at least hostReserveMB). VMs' memory is not
// overcommitted: ring 0 places a VM only while the VMs of the node fit in this.
//
// The VMs this host runs as ring 1 hosts are no tenant's, so ring 0 counts none of them: their
// memory is taken off what is offered here.
func (h *Host) MemoryMB() int64 {
	offer := h.cfg.MemoryMB
	if offer <= 0 {
		total := memTotalMB()
		offer = max(0, total-max(hostReserveMB, total/8))
	}
	return max(0, offer-h.hostVMsMB())
}

// hostVMsMB is the memory of the VMs this host runs as ring 1 hosts.
func (h *Host) hostVMsMB() int64 {
	dirs, _ := os.ReadDir(filepath.Join(h.cfg.Dir, "vms"))
	var mb int64
	for _, d := range dirs {
		if r, ok := h.load(enjin.NodeID(d.Name())); ok && r.Request.Host != nil {
			mb += int64(r.Request.MemoryMB)
		}
	}
	return mb
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
