package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Probes of what another tenant, or the host, has: each takes the target as its argument,
// so a test that knows the host's side (an address, a path, a pid, an IPC key) can aim them,
// and `probe par` runs many at once. ok means the target could not be reached.

func init() {
	for name, p := range map[string]probe{
		"connect":    connect,
		"udp-dns":    udpDNS,
		"absent":     absent,
		"unreadable": unreadable,
		"unwritable": unwritable,
		"kill":       killProbe,
		"sysv-shm":   sysv(func(key int) error { _, err := unix.SysvShmGet(key, 0, 0); return err }),
		"sysv-msg": sysv(func(key int) error {
			_, _, e := unix.Syscall(unix.SYS_MSGGET, uintptr(key), 0, 0)
			return errnoErr(e)
		}),
		"abstract":  abstract,
		"home-size": func(arg string) (bool, string) { return fill(os.Getenv("HOME"))(arg) },
	} {
		probes[name] = aimed(p)
	}
}

// aimed runs p only with a target; without one (as in `probe run all`) there is nothing to
// reach, as the ipc probe says too.
func aimed(p probe) probe {
	return func(arg string) (bool, string) {
		if arg == "" {
			return true, "no target given"
		}
		return p(arg)
	}
}

// dialTimeout bounds a connection attempt: an address no one answers for (another
// instance behind the bridge's isolated ports) counts as held once it passes. Whatever is
// reachable on the host's bridge answers in well under a millisecond.
const dialTimeout = 500 * time.Millisecond

// connect tries a TCP connection to arg (host:port).
func connect(arg string) (bool, string) {
	c, err := net.DialTimeout("tcp", arg, dialTimeout)
	if err != nil {
		return true, shortNetErr(err)
	}
	c.Close()
	return false, "connected to " + arg
}

// udpDNS sends a DNS query to arg (host:port) and holds if no answer comes back.
func udpDNS(arg string) (bool, string) {
	c, err := net.DialTimeout("udp", arg, dialTimeout)
	if err != nil {
		return true, shortNetErr(err)
	}
	defer c.Close()
	// A query for "enjin." type A, id 0x4242, recursion desired.
	q := []byte{0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'e', 'n', 'j', 'i', 'n', 0, 0, 1, 0, 1}
	c.SetDeadline(time.Now().Add(dialTimeout))
	if _, err := c.Write(q); err != nil {
		return true, shortNetErr(err)
	}
	b := make([]byte, 512)
	n, err := c.Read(b)
	if err != nil {
		return true, shortNetErr(err)
	}
	return false, fmt.Sprintf("%d bytes of answer from %s", n, arg)
}

func shortNetErr(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return "timeout"
	}
	return err.Error()
}

// absent holds if path does not exist here at all: not merely unreadable.
func absent(path string) (bool, string) {
	_, err := os.Lstat(path)
	return errors.Is(err, fs.ErrNotExist), errString(err)
}

// unreadable holds if path cannot be opened for reading (or listed, for a directory).
func unreadable(path string) (bool, string) {
	f, err := os.Open(path)
	if err != nil {
		return true, errString(err)
	}
	defer f.Close()
	b := make([]byte, 64)
	if _, err := f.Read(b); err != nil && !errors.Is(err, unix.EISDIR) {
		return true, errString(err)
	}
	if _, err := f.Readdirnames(1); err != nil && !errors.Is(err, unix.ENOTDIR) {
		return true, errString(err)
	}
	return false, "opened and read " + path
}

// unwritable holds if path cannot be created or opened for writing; what it creates it
// removes.
func unwritable(path string) (bool, string) {
	_, statErr := os.Lstat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return true, errString(err)
	}
	f.Close()
	if statErr != nil {
		os.Remove(path)
	}
	return false, "opened for writing " + path
}

// killProbe sends arg's signal to arg's pid (PID:SIGNAL, numbers; signal 0 by default) and
// holds if it could not.
func killProbe(arg string) (bool, string) {
	p, s, _ := strings.Cut(arg, ":")
	pid, err := strconv.Atoi(p)
	if err != nil {
		return false, "want PID:SIGNAL"
	}
	sig, _ := strconv.Atoi(s)
	err = unix.Kill(pid, unix.Signal(sig))
	return err != nil, fmt.Sprintf("kill(%d, %d): %s", pid, sig, errString(err))
}

// sysv holds if the System V object of key arg is not there (ENOENT).
func sysv(get func(key int) error) probe {
	return func(arg string) (bool, string) {
		key, err := strconv.ParseInt(arg, 0, 32)
		if err != nil {
			return false, "want a key"
		}
		err = get(int(key))
		return errors.Is(err, unix.ENOENT), fmt.Sprintf("key %#x: %s", key, errString(err))
	}
}

func errnoErr(e unix.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

// abstract holds if no one answers on the abstract unix socket named arg.
func abstract(arg string) (bool, string) {
	c, err := net.DialTimeout("unix", "@"+arg, dialTimeout)
	if err != nil {
		return true, shortNetErr(err)
	}
	c.Close()
	return false, "connected to @" + arg
}

// ipcHold makes the IPC objects a test looks for from elsewhere: a System V shared memory
// segment and message queue with key arg, and a listener on the abstract unix socket
// "probe-<key>"; it says "ready" and then serves the socket until killed.
func ipcHold(arg string) int {
	key, err := strconv.ParseInt(arg, 0, 32)
	if err != nil {
		fmt.Println("want a key")
		return 2
	}
	if _, err := unix.SysvShmGet(int(key), 4096, unix.IPC_CREAT|0o600); err != nil {
		fmt.Println("shmget:", err)
		return 1
	}
	if _, _, e := unix.Syscall(unix.SYS_MSGGET, uintptr(key), unix.IPC_CREAT|0o600, 0); e != 0 {
		fmt.Println("msgget:", e)
		return 1
	}
	l, err := net.Listen("unix", "@probe-"+arg)
	if err != nil {
		fmt.Println("listen:", err)
		return 1
	}
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			return 1
		}
		c.Write([]byte("secret of " + os.Getenv("ENJIN_TENANT") + "\n"))
		c.Close()
	}
}

// parallel runs the named probes (NAME=ARG each) at most 64 at a time and prints their
// results in the order given.
func parallel(args []string) int {
	res := make([]Result, len(args))
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i, a := range args {
		sem <- struct{}{}
		wg.Go(func() { // ends when its probe has
			defer func() { <-sem }()
			name, arg, _ := strings.Cut(a, "=")
			res[i] = runProbe(name, arg)
		})
	}
	wg.Wait()
	enc := json.NewEncoder(os.Stdout)
	code := 0
	for _, r := range res {
		if _, ok := probes[r.Probe]; !ok {
			code = 1
		}
		enc.Encode(r)
	}
	return code
}
