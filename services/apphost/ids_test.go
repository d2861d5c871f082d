package apphost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The uid range is refused when it overlaps a user's subordinate ids or holds an existing
// user or group; claims are unique, kept for their owner, and freed when the owner's
// directory is gone.
func TestUIDs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	sub := write("subuid", "alice:100000:65536\n")
	passwd := write("passwd", "root:x:0:0::/root:/bin/sh\nbob:x:300005:300005::/home/bob:/bin/sh\n")
	for _, c := range []struct {
		first, count uint32
		want         string
	}{
		{200000, 100000, ""},
		{150000, 1000, "overlaps alice"},
		{90000, 20000, "overlaps alice"},
		{300000, 10, "holds bob"},
	} {
		u := &uids{first: c.first, last: c.first + c.count - 1}
		err := u.check(idFiles{subordinate: []string{sub}, accounts: []string{passwd}})
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("range %d+%d: %v, want %q", c.first, c.count, err, c.want)
		}
	}

	u, err := newUIDs(filepath.Join(dir, "registry"), 400000, 3)
	if err != nil {
		t.Fatal(err)
	}
	owners := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")}
	got := map[uint32]bool{}
	for _, o := range owners {
		os.Mkdir(o, 0o700)
		id, err := u.claim(o, 0)
		if err != nil || got[id] {
			t.Fatalf("claim for %s: %d %v (have %v)", o, id, err, got)
		}
		got[id] = true
	}
	if _, err := u.claim(filepath.Join(dir, "d"), 0); err == nil {
		t.Fatal("a fourth claim in a range of three succeeded")
	}
	again, err := u.claim(owners[1], 0)
	if err != nil || !got[again] {
		t.Fatalf("claim again for b: %d %v", again, err)
	}
	os.Remove(owners[0]) // a's files are gone: its uid is free again
	d := filepath.Join(dir, "d")
	os.Mkdir(d, 0o700)
	if id, err := u.claim(d, 0); err != nil || !got[id] {
		t.Fatalf("claim after a's directory went: %d %v", id, err)
	}
}
