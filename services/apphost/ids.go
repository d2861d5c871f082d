package apphost

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// uids hands each app a uid (and the gid of the same number) of its own, from a range the
// operator configures, and remembers it in a registry shared by every ring 1 node on the
// host: one file per uid in use, naming the directory of the app that holds it. A uid stays
// with its app for as long as the app's directory exists; it is given out again only once
// that directory is gone. Two apps never share a uid, whatever their names: names play no
// part in the choice.
type uids struct {
	dir         string // the registry
	first, last uint32

	mu sync.Mutex
}

// newUIDs checks the range against the host's users and subordinate id ranges and opens the
// registry.
func newUIDs(registry string, first, count uint32) (*uids, error) {
	if count == 0 || first < 1000 || uint64(first)+uint64(count) > 1<<31 {
		return nil, fmt.Errorf("apphost: uid range %d+%d: want count > 0 within 1000–2^31", first, count)
	}
	u := &uids{dir: registry, first: first, last: first + count - 1}
	if err := u.check(hostIDFiles); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(registry, 0o700); err != nil {
		return nil, fmt.Errorf("apphost: uid registry: %w", err)
	}
	return u, nil
}

// idFiles are where the host lists its subordinate id ranges and its users and groups.
type idFiles struct{ subordinate, accounts []string }

var hostIDFiles = idFiles{subordinate: []string{"/etc/subuid", "/etc/subgid"}, accounts: []string{"/etc/passwd", "/etc/group"}}

// check refuses a range that overlaps a subordinate range or holds an existing id.
func (u *uids) check(f idFiles) error {
	for _, p := range f.subordinate {
		if err := u.checkSubordinate(p); err != nil {
			return err
		}
	}
	for _, p := range f.accounts {
		if err := u.checkAccounts(p); err != nil {
			return err
		}
	}
	return nil
}

// checkSubordinate refuses a range that overlaps one delegated to a user in /etc/subuid or
// /etc/subgid (user:first:count): that user's user namespaces could map our app ids.
func (u *uids) checkSubordinate(path string) error {
	return scanColon(path, func(f []string) error {
		if len(f) < 3 {
			return nil
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		n, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || n == 0 {
			return nil
		}
		if start <= uint64(u.last) && start+n-1 >= uint64(u.first) {
			return fmt.Errorf("apphost: uid range %d–%d overlaps %s's range %d–%d in %s", u.first, u.last, f[0], start, start+n-1, path)
		}
		return nil
	})
}

// checkAccounts refuses a range holding an existing user or group id.
func (u *uids) checkAccounts(path string) error {
	return scanColon(path, func(f []string) error {
		if len(f) < 3 {
			return nil
		}
		id, err := strconv.ParseUint(f[2], 10, 32)
		if err == nil && id >= uint64(u.first) && id <= uint64(u.last) {
			return fmt.Errorf("apphost: uid range %d–%d holds %s (id %d) of %s", u.first, u.last, f[0], id, path)
		}
		return nil
	})
}

func scanColon(path string, fn func([]string) error) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("apphost: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if err := fn(strings.Split(line, ":")); err != nil {
			return err
		}
	}
	return sc.Err()
}

// claim returns the uid of the app whose directory is owner (absolute): the one recorded
// for it; else want, the uid its saved state names, if no living app holds that (the state
// dir was restored from a backup or moved, so the app's files belong to want); else a free
// one. Whichever it returns is recorded. A uid whose recorded owner no longer exists is free.
func (u *uids) claim(owner string, want uint32) (uint32, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if want >= u.first && want <= u.last {
		switch o := u.owner(want); {
		case o == owner:
			return want, nil
		case o == "" || !exists(o):
			if ok, err := u.take(want, owner, o != ""); ok || err != nil {
				return want, err
			}
		}
	}
	for id := u.first; id <= u.last && id >= u.first; id++ {
		switch o := u.owner(id); {
		case o == owner:
			return id, nil
		case o != "" && exists(o):
			continue
		default:
			if ok, err := u.take(id, owner, o != ""); ok || err != nil {
				return id, err
			}
		}
	}
	return 0, fmt.Errorf("apphost: every uid of %d–%d is in use", u.first, u.last)
}

// take records owner for id, which is free (stale: its recorded owner is gone); false if
// another node on this host took it just now.
func (u *uids) take(id uint32, owner string, stale bool) (bool, error) {
	path := u.path(id)
	if stale {
		os.Remove(path)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("apphost: claim uid %d: %w", id, err)
	}
	_, err = f.WriteString(owner + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return false, fmt.Errorf("apphost: claim uid %d: %w", id, err)
	}
	return true, nil
}

// release frees id if owner holds it.
func (u *uids) release(id uint32, owner string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.owner(id) == owner {
		os.Remove(u.path(id))
	}
}

func (u *uids) path(id uint32) string {
	return filepath.Join(u.dir, strconv.FormatUint(uint64(id), 10))
}

// owner is the app directory recorded for id, or "".
func (u *uids) owner(id uint32) string {
	b, err := os.ReadFile(u.path(id))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// serials numbers the instances a node starts, for the names of their cgroups, network
// namespaces and veth pairs: never two alike while the node's state exists. The next number
// is kept in a file so a restarted node does not reuse one a leftover might still hold.
type serials struct {
	path string

	mu   sync.Mutex
	next uint64
}

func newSerials(path string) *serials {
	s := &serials{path: path, next: 1}
	if b, err := os.ReadFile(path); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			s.next = n
		}
	}
	return s
}

// take returns the next serial, as a short name: base 36.
func (s *serials) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.next
	s.next++
	_ = os.WriteFile(s.path, []byte(strconv.FormatUint(s.next, 10)+"\n"), 0o600)
	return strconv.FormatUint(n, 36)
}
