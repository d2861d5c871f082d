package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Limits bounds a child's resources. Zero fields mean no limit.
type Limits struct {
	MemoryBytes int64 // resident memory; the kernel's OOM killer stops the child beyond it
	CPUMillis   int   // CPU time per second of wall time, in thousandths of a core
	Pids        int   // processes and threads
}

// Cgroups places children in control groups with limits. Two backends exist — cgroup v1
// (one hierarchy per controller, as on these machines) and v2 (the unified hierarchy of
// most production hosts) — chosen by DetectCgroups at start.
type Cgroups interface {
	// Create makes group name with limits and returns the cgroup.procs files a process
	// writes its pid to in order to join.
	Create(name string, l Limits) (procs []string, err error)
	// Usage reads the group's memory in use and CPU time consumed (ns).
	Usage(name string) (memBytes, cpuNanos uint64, err error)
	// OOMKills is how many processes of the group the kernel killed for want of memory.
	OOMKills(name string) uint64
	// Kill kills every process in the group (cgroup.kill on v2, freeze-and-kill on v1) and
	// waits until the group is empty.
	Kill(name string) error
	// Remove deletes the group; it must be empty.
	Remove(name string) error
	// List names the groups that exist (made by this or an earlier run), sorted.
	List() ([]string, error)
	// Version is 1 or 2.
	Version() int
}

// DetectCgroups picks the backend for this host: v2 if the unified hierarchy at root has
// the memory, cpu and pids controllers, else v1. Groups are made below this process's own
// group, under prefix.
func DetectCgroups(prefix string) (Cgroups, error) {
	self, err := readSelfCgroups("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		ctl := strings.Fields(string(b))
		if has(ctl, "memory") && has(ctl, "cpu") && has(ctl, "pids") {
			return &cgroupV2{base: filepath.Join("/sys/fs/cgroup", self[""], prefix)}, nil
		}
	}
	v1 := &cgroupV1{bases: map[string]string{}}
	for _, c := range []string{"memory", "cpu", "pids"} {
		mnt := filepath.Join("/sys/fs/cgroup", c)
		if _, err := os.Stat(mnt); err != nil {
			return nil, fmt.Errorf("sandbox: no cgroup v2 controllers and no v1 %s hierarchy", c)
		}
		v1.bases[c] = filepath.Join(mnt, self[c], prefix)
	}
	for _, c := range []string{"cpuacct", "freezer"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c)); err == nil {
			v1.bases[c] = filepath.Join("/sys/fs/cgroup", c, self[c], prefix)
		}
	}
	return v1, nil
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// readSelfCgroups maps each controller (and "" for v2) to this process's group path.
func readSelfCgroups(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			m[c] = parts[2]
		}
	}
	return m, sc.Err()
}

func writeFile(path, v string) error {
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		return fmt.Errorf("sandbox: cgroup: %w", err)
	}
	return nil
}

func validGroup(name string) error {
	if name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
		return fmt.Errorf("sandbox: cgroup name %q", name)
	}
	return nil
}

// cgroupV1 keeps one directory per controller.
type cgroupV1 struct{ bases map[string]string }

func (c *cgroupV1) Version() int { return 1 }

func (c *cgroupV1) Create(name string, l Limits) (procs []string, err error) {
	if err := validGroup(name); err != nil {
		return nil, err
	}
	var made []string
	defer func() {
		if err != nil { // leave no half-made group behind to fail the next Create
			for _, dir := range made {
				_ = os.Remove(dir)
			}
		}
	}()
	for ctl, base := range c.bases {
		if err := os.MkdirAll(base, 0o755); err != nil {
			return nil, fmt.Errorf("sandbox: cgroup %s: %w", ctl, err)
		}
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o755); err != nil { // never share a group another made
			return nil, fmt.Errorf("sandbox: cgroup %s/%s: %w", ctl, name, err)
		}
		made = append(made, dir)
		procs = append(procs, filepath.Join(dir, "cgroup.procs"))
	}
	if l.MemoryBytes > 0 {
		dir := filepath.Join(c.bases["memory"], name)
		if err := writeFile(filepath.Join(dir, "memory.limit_in_bytes"), strconv.FormatInt(l.MemoryBytes, 10)); err != nil {
			return nil, err
		}
		// Best effort: also bound swap, where the kernel accounts it.
		_ = os.WriteFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(l.MemoryBytes, 10)), 0o644)
	}
	if l.CPUMillis > 0 {
		dir := filepath.Join(c.bases["cpu"], name)
		if err := writeFile(filepath.Join(dir, "cpu.cfs_period_us"), "100000"); err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(dir, "cpu.cfs_quota_us"), strconv.Itoa(l.CPUMillis*100)); err != nil {
			return nil, err
		}
	}
	if l.Pids > 0 {
		if err := writeFile(filepath.Join(c.bases["pids"], name, "pids.max"), strconv.Itoa(l.Pids)); err != nil {
			return nil, err
		}
	}
	return procs, nil
}

func (c *cgroupV1) Usage(name string) (uint64, uint64, error) {
	mem, err := readUint(filepath.Join(c.bases["memory"], name, "memory.usage_in_bytes"))
	if err != nil {
		return 0, 0, err
	}
	acct := c.bases["cpuacct"]
	if acct == "" {
		acct = c.bases["cpu"]
	}
	cpu, err := readUint(filepath.Join(acct, name, "cpuacct.usage"))
	return mem, cpu, err
}

func (c *cgroupV1) Remove(name string) error {
	var errs []error
	for _, base := range c.bases {
		if err := os.Remove(filepath.Join(base, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cgroupV2 keeps one directory in the unified hierarchy.
type cgroupV2 struct{ base string }

func (c *cgroupV2) Version() int { return 2 }

func (c *cgroupV2) Create(name string, l Limits) ([]string, error) {
	if err := validGroup(name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.base, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: cgroup: %w", err)
	}
	// Children of base get the controllers only if base delegates them.
	_ = os.WriteFile(filepath.Join(c.base, "cgroup.subtree_control"), []byte("+memory +cpu +pids"), 0o644)
	dir := filepath.Join(c.base, name)
	if err := os.Mkdir(dir, 0o755); err != nil { // never share a group another made
		return nil, fmt.Errorf("sandbox: cgroup %s: %w", name, err)
	}
	if l.MemoryBytes > 0 {
		if err := writeFile(filepath.Join(dir, "memory.max"), strconv.FormatInt(l.MemoryBytes, 10)); err != nil {
			return nil, err
		}
		_ = os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0o644)
	}
	if l.CPUMillis > 0 {
		if err := writeFile(filepath.Join(dir, "cpu.max"), fmt.Sprintf("%d 100000", l.CPUMillis*100)); err != nil {
			return nil, err
		}
	}
	if l.Pids > 0 {
		if err := writeFile(filepath.Join(dir, "pids.max"), strconv.Itoa(l.Pids)); err != nil {
			return nil, err
		}
	}
	return []string{filepath.Join(dir, "cgroup.procs")}, nil
}

func (c *cgroupV2) Usage(name string) (uint64, uint64, error) {
	dir := filepath.Join(c.base, name)
	mem, err := readUint(filepath.Join(dir, "memory.current"))
	if err != nil {
		return 0, 0, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return mem, 0, fmt.Errorf("sandbox: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return mem, us * 1000, nil
		}
	}
	return mem, 0, nil
}

func (c *cgroupV2) Remove(name string) error {
	if err := os.Remove(filepath.Join(c.base, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sandbox: cgroup: %w", err)
	}
	return nil
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("sandbox: %w", err)
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}
