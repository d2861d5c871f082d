package test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestHostileProbesControl is the control of the probes the hostile tests aim at another
// tenant and the host: run on the host, as root, at targets that are there, each must
// report the wall missing — or a wall it reports held in a sandbox proves nothing.
func TestHostileProbesControl(t *testing.T) {
	dir := tempDir(t, "enjin-probectl-")
	bin := filepath.Join(dir, "probe")
	if out, err := exec.Command("go", "build", "-o", bin, "./probe").CombinedOutput(); err != nil {
		t.Fatalf("build test/probe: %v\n%s", err, out)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	go func() { // ends when tcp is closed
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	go func() { // ends when udp is closed
		b := make([]byte, 512)
		for {
			n, from, err := udp.ReadFrom(b)
			if err != nil {
				return
			}
			udp.WriteTo(b[:n], from)
		}
	}()
	name := "enjin-probectl-" + strconv.Itoa(os.Getpid())
	abs, err := net.Listen("unix", "@"+name)
	if err != nil {
		t.Fatal(err)
	}
	defer abs.Close()
	key := 0x45000000 + os.Getpid()%0x10000
	shm, err := unix.SysvShmGet(key, 4096, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmCtl(shm, unix.IPC_RMID, nil)
	msg, _, errno := unix.Syscall(unix.SYS_MSGGET, uintptr(key), unix.IPC_CREAT|unix.IPC_EXCL|0o600, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	defer unix.Syscall(unix.SYS_MSGCTL, msg, unix.IPC_RMID, 0)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o600)

	attempts := []string{"connect=" + tcp.Addr().String(), "udp-dns=" + udp.LocalAddr().String(), "absent=" + file,
		"unreadable=" + file, "unwritable=" + file, "unwritable=" + filepath.Join(dir, "new"), fmt.Sprintf("kill=%d:0", os.Getpid()),
		fmt.Sprintf("sysv-shm=%d", key), fmt.Sprintf("sysv-msg=%d", key), "abstract=" + name, "home-size=1"}
	cmd := exec.Command(bin, append([]string{"par"}, attempts...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe par: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(attempts) {
		t.Fatalf("%d results for %d probes:\n%s", len(lines), len(attempts), out)
	}
	for i, l := range lines {
		var r result
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.OK {
			t.Errorf("%s on the host: %s, want the wall missing", attempts[i], l)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); err == nil {
		t.Errorf("unwritable left the file it made")
	}
	t.Logf("%d probes found what they look for on the host", len(lines))
}
