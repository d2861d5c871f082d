package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// Probes that need a child process: to be killed in the probe's place (memory, fork-bomb)
// or to be a program the probe is not (suid).

func init() {
	probes["memory"] = memory
	probes["fork-bomb"] = forkBomb
	probes["suid"] = suid
}

// memory has a child touch arg MiB (default 1024); the wall holds if the kernel kills it.
func memory(arg string) (bool, string) {
	if arg == "" {
		arg = "1024"
	}
	out, err := exec.Command("/proc/self/exe", "hog", arg).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, fmt.Sprintf("child touching %s MiB was killed by SIGKILL", arg)
		}
	}
	return false, fmt.Sprintf("child touching %s MiB: %v %q", arg, err, bytes.TrimSpace(out))
}

// forkBomb has a child start arg (default 1000) sleeping processes; the wall holds if it
// gets fewer. The child, not the probe, meets the limit: a Go program that cannot make a
// thread may crash.
func forkBomb(arg string) (bool, string) {
	if arg == "" {
		arg = "1000"
	}
	want, _ := strconv.Atoi(arg)
	out, err := exec.Command("/proc/self/exe", "bomb", arg).Output()
	got := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		got, _ = strconv.Atoi(sc.Text()) // each line counts one more
	}
	return got < want, fmt.Sprintf("started %d of %d processes (%v)", got, want, err)
}

// suid runs the setuid-root program arg ("euid" prints its effective uid: the tests give a
// setuid-root copy of this probe), or else su, and holds if it did not become root.
func suid(arg string) (bool, string) {
	if arg == "" {
		out, err := exec.Command("/bin/su", "-c", "id -u", "root").CombinedOutput()
		return err != nil && !bytes.Equal(bytes.TrimSpace(out), []byte("0")), fmt.Sprintf("su: %v %q", err, bytes.TrimSpace(out))
	}
	fi, err := os.Stat(arg)
	if err != nil {
		return false, errString(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSetuid == 0 || st.Uid != 0 {
		return false, fmt.Sprintf("%s is not setuid root (%v, owner %d): nothing shown", arg, fi.Mode(), st.Uid)
	}
	out, err := exec.Command(arg, "euid").Output()
	euid := strings.TrimSpace(string(out))
	return err == nil && euid != "0" && euid != "", fmt.Sprintf("setuid-root %s ran with euid %s (%v)", arg, euid, err)
}

// child is what the probes above run in a child.
func child(mode string, args []string) int {
	n := 0
	if len(args) > 0 {
		n, _ = strconv.Atoi(args[0])
	}
	switch mode {
	case "hog":
		b := make([]byte, n<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Println("survived")
	case "bomb":
		var pids []int
		for i := range n {
			pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "60"}, &syscall.ProcAttr{
				Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}})
			if err != nil {
				break
			}
			pids = append(pids, pid)
			fmt.Println(i + 1)
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
			syscall.Wait4(pid, nil, 0, nil)
		}
	case "euid":
		fmt.Println(os.Geteuid())
	case "int80":
		a1, _ := strconv.Atoi(args[1])
		debug.SetPanicOnFault(true) // a general protection fault, where there is no int $0x80
		defer func() {
			if recover() != nil {
				fmt.Println("fault")
			}
		}()
		fmt.Println(int80(uint32(n), uint32(a1), 0, 0))
	}
	return 0
}
