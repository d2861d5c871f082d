package apphost

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// An app's HOME is a file system of its own: an ext4 image (sparse, so it takes only what is
// written) of the app's disk size, loop-mounted on the host at the app's home directory and
// bound into every instance at /home/app. Its size is the app's disk quota: a full HOME is
// ENOSPC for that app and nobody else. It outlives instances, releases and restarts of the
// node; destroying the app deletes it.

// ensureHome makes the app's HOME image if it is missing and mounts it unless it is mounted.
func (a *app) ensureHome(sizeMB int) error {
	img, mnt := a.homeImage(), a.homeDir()
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return fmt.Errorf("apphost: home: %w", err)
	}
	if mounted(mnt) {
		return nil
	}
	if _, err := os.Stat(img); os.IsNotExist(err) {
		if err := makeImage(img, sizeMB, a.uid); err != nil {
			return err
		}
	}
	if err := run("mount", "-t", "ext4", "-o", "loop,nosuid,nodev,noatime", img, mnt); err != nil {
		return fmt.Errorf("apphost: mount home of %s/%s: %w", a.tenant, a.name, err)
	}
	// mkfs gives the root directory to the app but leaves it 0755.
	if err := os.Chmod(mnt, 0o700); err != nil {
		return fmt.Errorf("apphost: home of %s/%s: %w", a.tenant, a.name, err)
	}
	return nil
}

// makeImage creates a sparse ext4 image of sizeMB whose root directory belongs to uid, mode
// 0700, written to a temporary name first so a half-made image is never mounted.
func makeImage(img string, sizeMB int, uid uint32) error {
	tmp := img + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("apphost: home image: %w", err)
	}
	err = f.Truncate(int64(sizeMB) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		id := strconv.FormatUint(uint64(uid), 10)
		// No reserved blocks (the app may fill all of it); root directory owned by the app.
		err = run("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "root_owner="+id+":"+id, tmp)
	}
	if err == nil {
		err = os.Rename(tmp, img)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("apphost: home image: %w", err)
	}
	return nil
}

// unmountHome unmounts the app's HOME if it is mounted (the loop device goes with it).
func (a *app) unmountHome() error {
	if !mounted(a.homeDir()) {
		return nil
	}
	if err := run("umount", a.homeDir()); err != nil {
		return fmt.Errorf("apphost: unmount home of %s/%s: %w", a.tenant, a.name, err)
	}
	return nil
}

// mounted reports whether dir is a mount point, from this process's mount table.
func mounted(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Field 5 is the mount point, with spaces and such octal-escaped.
		fs := strings.Fields(sc.Text())
		if len(fs) > 4 && unescapeMount(fs[4]) == dir {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// run runs a system command, returning its output in the error when it fails.
func run(name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Home is one app's HOME on a host: its image and where the image is mounted while the app
// lives here.
type Home struct {
	Image, Mount string
}

// Homes lists the HOMEs kept under dir, a host's Config.Dir, for whoever copies a host's
// state (enjin backup), which must treat each image as one file system and skip its mount.
func Homes(dir string) ([]Home, error) {
	imgs, err := filepath.Glob(filepath.Join(dir, "apps", "*", "*", "home.img"))
	if err != nil {
		return nil, fmt.Errorf("apphost: homes: %w", err)
	}
	hs := make([]Home, 0, len(imgs))
	for _, img := range imgs {
		hs = append(hs, Home{Image: img, Mount: filepath.Join(filepath.Dir(img), "home")})
	}
	return hs, nil
}

// Mounted reports whether dir is a mount point (in this process's mount namespace).
func Mounted(dir string) bool { return mounted(dir) }
