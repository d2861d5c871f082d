package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// killWait bounds how long Kill waits for a group to empty.
const killWait = 10 * time.Second

func (c *cgroupV1) Kill(name string) error {
	if err := validGroup(name); err != nil {
		return err
	}
	// Any controller's group lists the same processes; the freezer's is the one to use.
	ctl := "freezer"
	if _, ok := c.bases[ctl]; !ok {
		ctl = "pids"
	}
	dir := filepath.Join(c.bases[ctl], name)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	frozen := ctl == "freezer" && freeze(dir)
	deadline := time.Now().Add(killWait)
	for {
		pids, err := readPids(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			break
		}
		// Frozen, nothing in the group can fork a new process between the read and the kill;
		// SIGKILL is delivered when the group thaws.
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if frozen {
			_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0o644)
			frozen = false
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sandbox: cgroup %s: %d processes still there after %v", name, len(pids), killWait)
		}
		time.Sleep(5 * time.Millisecond)
		if ctl == "freezer" {
			frozen = freeze(dir)
		}
	}
	if frozen {
		_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0o644)
	}
	return nil
}

// freeze freezes a v1 freezer group and waits until the kernel says it is frozen.
func freeze(dir string) bool {
	if os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("FROZEN"), 0o644) != nil {
		return false
	}
	for range 200 {
		b, err := os.ReadFile(filepath.Join(dir, "freezer.state"))
		if err != nil {
			return false
		}
		if strings.TrimSpace(string(b)) == "FROZEN" {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

func (c *cgroupV2) Kill(name string) error {
	if err := validGroup(name); err != nil {
		return err
	}
	dir := filepath.Join(c.base, name)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	killed := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644) == nil
	deadline := time.Now().Add(killWait)
	for {
		pids, err := readPids(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if !killed { // a kernel before 5.14: no cgroup.kill
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sandbox: cgroup %s: %d processes still there after %v", name, len(pids), killWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *cgroupV1) List() ([]string, error) {
	seen := map[string]bool{}
	for _, base := range c.bases {
		names, err := subdirs(base)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			seen[n] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func (c *cgroupV2) List() ([]string, error) { return subdirs(c.base) }

func subdirs(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: cgroups: %w", err)
	}
	var out []string
	for _, e := range es {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

func readPids(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: cgroup: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func (c *cgroupV1) OOMKills(name string) uint64 {
	return counter(filepath.Join(c.bases["memory"], name, "memory.oom_control"), "oom_kill")
}

func (c *cgroupV2) OOMKills(name string) uint64 {
	return counter(filepath.Join(c.base, name, "memory.events"), "oom_kill")
}

// counter reads the value of key from a cgroup file of "key value" lines, or 0.
func counter(path, key string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
