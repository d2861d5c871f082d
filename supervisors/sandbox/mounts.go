package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The sandbox's root, built on a tmpfs at Spec.Root in the helper's own mount namespace:
//
//	/usr /etc /lib* /bin /sbin  the host's, read-only (symlinks where the host has them)
//	/tmp, /dev/shm              private tmpfs, sized
//	/var/tmp                    → /tmp
//	/dev                        null zero full random urandom tty, and the fd links
//	/proc                       this PID namespace's, other users' processes hidden,
//	                            the kernel's knobs read-only and its secrets masked
//	/run                        empty
//	Binds                       e.g. the release at /app (ro) and HOME at /home/app (rw)
//
// and nothing else of the host. The root itself ends read-only.

// osDirs are the host's, shown read-only.
var osDirs = []string{"usr", "etc", "lib", "lib32", "lib64", "libx32", "bin", "sbin"}

// devices are the host's, bound onto empty files in the sandbox's /dev.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// procReadOnly are bound read-only over themselves; procMasked get /dev/null over them.
var (
	procReadOnly = []string{"sys", "sysrq-trigger", "irq", "bus"}
	procMasked   = []string{"kcore", "keys", "timer_list", "sched_debug", "latency_stats", "timer_stats"}
)

const (
	roAttrs  = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	rwAttrs  = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	devAttrs = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NOEXEC // device nodes need dev
)

// buildRoot mounts the sandbox's root and pivots into it.
func buildRoot(sb *Spec) error {
	// Nothing mounted from here on may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// The directories made below are for everyone to traverse, whatever umask we inherited.
	unix.Umask(0o022)
	root := sb.Root
	if err := checkRoot(root); err != nil {
		return err
	}
	if err := mountTmpfs(root, unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=1m,nr_inodes=4096"); err != nil {
		return err
	}
	for _, step := range []func(string, *Spec) error{mountOS, mountTmp, mountDev, mountProc, mountBinds} {
		if err := step(root, sb); err != nil {
			return err
		}
	}
	return pivot(root)
}

// checkRoot wants Root to be what Spec says: a directory, not a symlink to one, that
// only root may enter.
func checkRoot(root string) error {
	fi, err := os.Lstat(root)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || !fi.IsDir() || st.Uid != 0 || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("want a directory owned by root with mode 0700, not %v", fi.Mode())
	}
	return nil
}

func mountTmpfs(dir string, flags uintptr, opts string) error {
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// mountOS shows the host's OS directories read-only. Where the host has a symlink (merged
// /usr: /bin -> usr/bin), so does the sandbox.
func mountOS(root string, _ *Spec) error {
	for _, name := range osDirs {
		host := "/" + name
		fi, err := os.Lstat(host)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			return err
		case fi.Mode()&os.ModeSymlink != 0:
			to, err := os.Readlink(host)
			if err != nil {
				return err
			}
			if err := os.Symlink(to, filepath.Join(root, name)); err != nil {
				return err
			}
		case fi.IsDir():
			if err := bindDir(host, filepath.Join(root, name), roAttrs); err != nil {
				return err
			}
		}
	}
	return nil
}

func mountTmp(root string, sb *Spec) error {
	tmp := filepath.Join(root, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	if err := mountTmpfs(tmp, unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("mode=1777,size=%d", sb.TmpBytes)); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(root, "var"), 0o755); err != nil {
		return err
	}
	if err := os.Symlink("/tmp", filepath.Join(root, "var", "tmp")); err != nil {
		return err
	}
	return os.Mkdir(filepath.Join(root, "run"), 0o755)
}

// mountDev gives the sandbox a /dev of a few harmless devices: no disks, no ptmx or pts,
// no /dev/kmsg or /dev/mem.
func mountDev(root string, sb *Spec) error {
	dev := filepath.Join(root, "dev")
	if err := os.Mkdir(dev, 0o755); err != nil {
		return err
	}
	if err := mountTmpfs(dev, unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return err
	}
	for _, d := range devices {
		if err := bindFile("/dev/"+d, filepath.Join(dev, d), devAttrs); err != nil {
			return err
		}
	}
	for name, to := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(to, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	shm := filepath.Join(dev, "shm")
	if err := os.Mkdir(shm, 0o755); err != nil {
		return err
	}
	return mountTmpfs(shm, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("mode=1777,size=%d", sb.ShmBytes))
}

// mountProc mounts a procfs of the helper's PID namespace, in which a process sees only
// those it could ptrace (hidepid=invisible): its own uid's, not its init's, which is not
// dumpable once it has left root.
func mountProc(root string, _ *Spec) error {
	proc := filepath.Join(root, "proc")
	if err := os.Mkdir(proc, 0o555); err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "hidepid=invisible"); err != nil {
		return fmt.Errorf("mount proc: %w", err)
	}
	for _, name := range procReadOnly {
		p := filepath.Join(proc, name)
		if !exists(p) {
			continue
		}
		if err := bindOver(p, p, roAttrs|unix.MOUNT_ATTR_NOEXEC); err != nil {
			return err
		}
	}
	for _, name := range procMasked {
		p := filepath.Join(proc, name)
		if !exists(p) {
			continue
		}
		if err := bindOver("/dev/null", p, unix.MOUNT_ATTR_RDONLY|devAttrs); err != nil {
			return err
		}
	}
	return nil
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// mountBinds shows the sandbox's own directories, creating their mount points (never
// through a symlink: a target under one could reach out of the new root).
func mountBinds(root string, sb *Spec) error {
	for _, b := range sb.Binds {
		attrs := uint64(roAttrs)
		if b.Writable {
			attrs = rwAttrs
		}
		fi, err := os.Stat(b.Source)
		if err != nil {
			return fmt.Errorf("bind %s: %w", b.Target, err)
		}
		dst := filepath.Join(root, b.Target)
		if err := mkdirNoFollow(root, filepath.Dir(b.Target)); err != nil {
			return fmt.Errorf("bind %s: %w", b.Target, err)
		}
		if fi.IsDir() {
			err = bindDir(b.Source, dst, attrs)
		} else {
			err = bindFile(b.Source, dst, attrs)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// mkdirNoFollow makes dir (absolute, inside root) and its parents, refusing symlinks.
func mkdirNoFollow(root, dir string) error {
	p := root
	for _, part := range strings.Split(strings.TrimPrefix(dir, "/"), "/") {
		if part == "" {
			continue
		}
		p = filepath.Join(p, part)
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", strings.TrimPrefix(p, root))
		}
	}
	return nil
}

func bindDir(src, dst string, attrs uint64) error {
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	return bindOver(src, dst, attrs)
}

func bindFile(src, dst string, attrs uint64) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	return bindOver(src, dst, attrs)
}

// bindOver binds src, with whatever is mounted below it, on dst and sets attrs on all of
// it. mount_setattr (Linux 5.12) does that for the whole tree at once; the fallback, a
// remount, reaches only the top mount.
func bindOver(src, dst string, attrs uint64) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, dst, err)
	}
	err := unix.MountSetattr(unix.AT_FDCWD, dst, unix.AT_RECURSIVE|unix.AT_SYMLINK_NOFOLLOW, &unix.MountAttr{Attr_set: attrs})
	if err == nil {
		return nil
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND)
	for a, f := range map[uint64]uintptr{unix.MOUNT_ATTR_RDONLY: unix.MS_RDONLY, unix.MOUNT_ATTR_NOSUID: unix.MS_NOSUID,
		unix.MOUNT_ATTR_NODEV: unix.MS_NODEV, unix.MOUNT_ATTR_NOEXEC: unix.MS_NOEXEC} {
		if attrs&a != 0 {
			flags |= f
		}
	}
	if rerr := unix.Mount("", dst, "", flags, ""); rerr != nil {
		return fmt.Errorf("restrict %s: mount_setattr: %v; remount: %w", dst, err, rerr)
	}
	return nil
}

// pivot makes root the root, lets go of the host's and makes root's own tmpfs read-only.
func pivot(root string) error {
	old := filepath.Join(root, ".old")
	if err := os.Mkdir(old, 0o700); err != nil {
		return err
	}
	if err := unix.PivotRoot(root, old); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.old", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's root: %w", err)
	}
	if err := os.Remove("/.old"); err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("remount / read-only: %w", err)
	}
	return nil
}
