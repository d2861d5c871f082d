package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Probes of what the sandbox shows: its files, its /proc, its limits and its credentials.

func init() {
	probes["etc-shadow"] = func(string) (bool, string) {
		_, err := os.ReadFile("/etc/shadow")
		return err != nil, errString(err)
	}
	probes["write-usr"] = writeProbe("/usr/probe-was-here")
	probes["write-app"] = writeProbe("/app/probe-was-here")
	probes["write-home"] = writeHome
	probes["umask"] = umask
	probes["tmp-size"] = fill("/tmp")
	probes["shm-size"] = fill("/dev/shm")
	probes["host-proc"] = hostProc
	probes["hostname"] = hostname
	probes["cgroup"] = cgroup
	probes["host-files"] = hostFiles
	probes["ipc"] = ipc
	probes["core-rlimit"] = rlimit(unix.RLIMIT_CORE, "0")
	probes["nofile"] = rlimit(unix.RLIMIT_NOFILE, "4096")
	probes["memlock"] = rlimit(unix.RLIMIT_MEMLOCK, "65536")
	probes["cap"] = func(string) (bool, string) {
		s := status()
		ok := true
		var d []string
		for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
			ok = ok && s[k] == "0000000000000000"
			d = append(d, k+" "+s[k])
		}
		return ok, strings.Join(d, ", ")
	}
	probes["nnp"] = statusIs("NoNewPrivs", "1")
	probes["seccomp-mode"] = func(string) (bool, string) {
		s := status()
		return s["Seccomp"] == "2", "Seccomp: " + s["Seccomp"] + ", Seccomp_filters: " + s["Seccomp_filters"]
	}
}

// writeProbe tries to create path on a read-only mount: EROFS, not merely EACCES, shows
// the mount is what stopped it (the tests make /app the app's own).
func writeProbe(path string) probe {
	return func(arg string) (bool, string) {
		p := path
		if arg != "" {
			p = arg
		}
		err := os.WriteFile(p, []byte("x"), 0o644)
		if err == nil {
			os.Remove(p)
		}
		return errors.Is(err, unix.EROFS), errString(err)
	}
}

// writeHome checks the one place that must be writable is.
func writeHome(arg string) (bool, string) {
	dir := arg
	if dir == "" {
		dir = os.Getenv("HOME")
	}
	f, err := os.CreateTemp(dir, "probe-was-here-")
	if err != nil {
		return false, errString(err)
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString("x")
	f.Close()
	b, rerr := os.ReadFile(f.Name())
	return err == nil && rerr == nil && string(b) == "x", "wrote and read back a file in " + dir
}

func umask(string) (bool, string) {
	f, err := os.CreateTemp("", "probe-umask-")
	if err != nil {
		return false, errString(err)
	}
	defer os.Remove(f.Name())
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return false, errString(err)
	}
	m := status()["Umask"]
	return fi.Mode().Perm() == 0o600 && m == "0077", fmt.Sprintf("new file %v, Umask %s", fi.Mode().Perm(), m)
}

// fill writes arg MiB (default 64) plus one into dir, which must run out of space first.
func fill(dir string) probe {
	return func(arg string) (bool, string) {
		mib := 64
		if arg != "" {
			mib, _ = strconv.Atoi(arg)
		}
		f, err := os.CreateTemp(dir, "probe-fill-")
		if err != nil {
			return false, errString(err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		chunk := make([]byte, 1<<20)
		for i := range mib + 1 {
			if _, err := f.Write(chunk); err != nil {
				return errors.Is(err, unix.ENOSPC), fmt.Sprintf("after %d MiB: %s", i, errString(err))
			}
		}
		return false, fmt.Sprintf("wrote %d MiB into %s", mib+1, dir)
	}
}

// hostProc checks that every process /proc shows is in our PID namespace, which is not
// the one named by arg (the host's, as /proc/self/ns/pid reads there), and that pid 1 is
// an init of ours, not us.
func hostProc(arg string) (bool, string) {
	ours, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return false, errString(err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false, errString(err)
	}
	n, foreign := 0, 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		ns, err := os.Readlink("/proc/" + e.Name() + "/ns/pid")
		if errors.Is(err, fs.ErrNotExist) {
			continue // gone meanwhile
		}
		n++
		if ns != ours {
			foreign++
		}
	}
	initAlive := unix.Kill(1, 0) == nil && os.Getpid() != 1
	ok := foreign == 0 && initAlive && ours != arg
	return ok, fmt.Sprintf("%d processes visible, %d of another pid namespace; ours %s, host's %q; pid 1 alive: %v",
		n, foreign, ours, arg, initAlive)
}

// cgroup checks that /proc/self/cgroup names no group of the host's: each line's path is
// the root of a cgroup namespace of our own.
func cgroup(string) (bool, string) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return false, errString(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines {
		if !strings.HasSuffix(l, ":/") {
			return false, "host path in /proc/self/cgroup: " + l
		}
	}
	return true, fmt.Sprintf("%d hierarchies, each at /", len(lines))
}

// hostFiles checks that places a host has and a sandbox must not show are absent: the
// paths in arg (comma-separated), or a default list.
func hostFiles(arg string) (bool, string) {
	paths := []string{"/root", "/work", "/srv", "/opt", "/mnt", "/boot", "/sys", "/var/lib", "/var/log",
		"/run/netns", "/old_root", "/home/root", ".dockerenv"}
	if arg != "" {
		paths = strings.Split(arg, ",")
	}
	var seen []string
	for _, p := range paths {
		if _, err := os.Lstat(filepath.Join("/", p)); err == nil {
			seen = append(seen, p)
		}
	}
	if home, err := os.ReadDir("/home"); err == nil && len(home) != 1 {
		seen = append(seen, fmt.Sprintf("/home with %d entries", len(home)))
	}
	if len(seen) > 0 {
		return false, "visible: " + strings.Join(seen, ", ")
	}
	return true, fmt.Sprintf("none of %d host paths visible; /home holds only the app's", len(paths))
}

func hostname(arg string) (bool, string) {
	name, err := os.Hostname()
	if err != nil {
		return false, errString(err)
	}
	err = unix.Sethostname([]byte("probe"))
	return name != arg && err != nil, fmt.Sprintf("hostname %q (host's %q); sethostname: %s", name, arg, errString(err))
}

// ipc checks System V IPC works but is private: the segment the host made with key arg is
// not visible.
func ipc(arg string) (bool, string) {
	key, _ := strconv.Atoi(arg)
	id, err := unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o600)
	if err != nil {
		return false, "shmget(IPC_PRIVATE): " + errString(err)
	}
	unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	if key == 0 {
		return true, "shmget(IPC_PRIVATE) works; no host key given"
	}
	_, err = unix.SysvShmGet(key, 0, 0)
	return errors.Is(err, unix.ENOENT), fmt.Sprintf("shmget(IPC_PRIVATE) works; shmget(%#x): %s", key, errString(err))
}

// rlimit checks that soft and hard limits are both arg (default def).
func rlimit(resource int, def string) probe {
	return func(arg string) (bool, string) {
		if arg == "" {
			arg = def
		}
		var l unix.Rlimit
		if err := unix.Getrlimit(resource, &l); err != nil {
			return false, errString(err)
		}
		want, _ := strconv.ParseUint(arg, 10, 64)
		return l.Cur == want && l.Max == want, fmt.Sprintf("soft %d hard %d, want %d", l.Cur, l.Max, want)
	}
}

func statusIs(key, want string) probe {
	return func(string) (bool, string) {
		got := status()[key]
		return got == want, key + ": " + got
	}
}

// status reads /proc/self/status into a map.
func status() map[string]string {
	m := map[string]string{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		m[k] = strings.TrimSpace(v)
	}
	return m
}
