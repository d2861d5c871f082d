package apphost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The uid range is refused when it overlaps a user's subordinate ids or holds an existing
// user or group; claims are unique, kept for their owner, freed when the owner's directory
// is gone, and an app restored or moved keeps the uid its files name when it is free.
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
	got, of := map[uint32]bool{}, map[string]uint32{}
	for _, o := range owners {
		os.Mkdir(o, 0o700)
		id, err := u.claim(o, 0)
		if err != nil || got[id] {
			t.Fatalf("claim for %s: %d %v (have %v)", o, id, err, got)
		}
		got[id], of[o] = true, id
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
	dID, err := u.claim(d, 0)
	if err != nil || !got[dID] {
		t.Fatalf("claim after a's directory went: %d %v", dID, err)
	}

	// b's state dir is restored elsewhere (or moved) and the old one is gone: b keeps the uid
	// its files name, though a lower one (d's, d gone too) is free; e, whose saved uid c still
	// holds, gets a free one instead.
	b2 := filepath.Join(dir, "b2")
	os.Rename(owners[1], b2)
	os.Remove(d)
	if id, err := u.claim(b2, again); err != nil || id != again {
		t.Fatalf("claim for b restored as b2, saved uid %d: %d %v", again, id, err)
	}
	cID := of[owners[2]]
	if id, err := u.claim(filepath.Join(dir, "e"), cID); err != nil || id == cID || id == again {
		t.Fatalf("claim for e saved with c's uid %d while c lives: %d %v", cID, id, err)
	}
}
