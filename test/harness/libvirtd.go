package harness

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// libvirtdLock is the file whose lock the tests of every package take around the host's one
// libvirtd: shared to run guests on it, exclusive to stop, restart or pause it.
var libvirtdLock = filepath.Join(os.TempDir(), "enjin-test-libvirtd.lock")

// Libvirtd is a test's hold on the host's libvirtd. go test runs packages at once, and a
// test that restarts libvirtd would fail another package's calls under it.
type Libvirtd struct{ f *os.File }

// LibvirtdShared waits until no test holds libvirtd exclusively and holds it shared until t
// ends.
func LibvirtdShared(t testing.TB) *Libvirtd {
	t.Helper()
	f, err := os.OpenFile(libvirtdLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	l := &Libvirtd{f: f}
	l.lock(t, syscall.LOCK_SH)
	t.Cleanup(func() { f.Close() }) // closing releases the lock
	return l
}

// Exclusive waits until every other test has let go of libvirtd and holds it alone, for a
// restart. Shared gives the others their turn back.
func (l *Libvirtd) Exclusive(t testing.TB) { t.Helper(); l.lock(t, syscall.LOCK_EX) }

// Shared turns an exclusive hold back into a shared one.
func (l *Libvirtd) Shared(t testing.TB) { t.Helper(); l.lock(t, syscall.LOCK_SH) }

func (l *Libvirtd) lock(t testing.TB, how int) {
	t.Helper()
	for {
		err := syscall.Flock(int(l.f.Fd()), how)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("lock %s: %v", libvirtdLock, err)
		}
		return
	}
}
