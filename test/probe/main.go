// Command probe tries to get out of its sandbox and reports, for each attempt, whether the
// wall held. Each probe prints one JSON object, {"probe":…,"ok":…,"detail":…}, where ok
// means the attempt was refused or the thing it looked for was invisible.
//
//	probe run NAME[=ARG]…   run the named probes (or "all", with default arguments)
//	probe par NAME=ARG…     run them 64 at a time, printing the results in order
//	probe serve             answer GET /healthz, GET / and /whoami (the app, release and
//	                        uid), GET /probe?name=NAME&arg=ARG, GET /fetch?url=URL (its own
//	                        GET of URL) and POST /sh (the body run by sh -c) on $PORT
//	                        (default 8080)
//	probe ipc-hold KEY      make SysV IPC objects of KEY and an abstract socket, and wait
//
// It is also the misbehaving app the sandbox's tests need: `probe trap` waits for SIGTERM,
// `probe orphan` and `probe tree` leave a grandchild behind. It is meant to be deployed as a
// hostile tenant's app.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Result is what one probe found.
type Result struct {
	Probe  string `json:"probe"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// probe tries one wall; ok says it held. arg is "" unless the caller gave one.
type probe func(arg string) (ok bool, detail string)

// probes holds every probe by name; the files next to this one fill it in.
var probes = map[string]probe{}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	mode, args := os.Args[1], os.Args[2:]
	switch mode {
	case "run":
		os.Exit(runAll(args))
	case "par":
		os.Exit(parallel(args))
	case "ipc-hold":
		if len(args) != 1 {
			usage()
		}
		os.Exit(ipcHold(args[0]))
	case "serve":
		os.Exit(serve())
	case "trap":
		trap()
	case "orphan", "tree":
		leaveGrandchild(mode == "orphan")
	case "hog", "bomb", "euid", "int80", "true":
		os.Exit(child(mode, args))
	default:
		usage()
	}
}

func usage() {
	names := make([]string, 0, len(probes))
	for n := range probes {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprintf(os.Stderr, "usage: probe run NAME[=ARG]… | all\n       probe par NAME=ARG…\n       probe serve\n       probe ipc-hold KEY\nprobes: %s\n", strings.Join(names, " "))
	os.Exit(2)
}

// runAll runs the probes named in args and prints their results; it exits 1 if a name is
// unknown, 0 otherwise (a breached wall is a result, not a failure of the probe).
func runAll(args []string) int {
	if len(args) == 1 && args[0] == "all" {
		args = args[:0]
		for n := range probes {
			args = append(args, n)
		}
		slices.Sort(args)
	}
	enc := json.NewEncoder(os.Stdout)
	code := 0
	for _, a := range args {
		name, arg, _ := strings.Cut(a, "=")
		r := runProbe(name, arg)
		if _, ok := probes[name]; !ok {
			code = 1
		}
		enc.Encode(r)
	}
	return code
}

func runProbe(name, arg string) Result {
	p, ok := probes[name]
	if !ok {
		return Result{Probe: name, Detail: "no such probe"}
	}
	held, detail := p(arg)
	return Result{Probe: name, OK: held, Detail: detail}
}

// trap waits for SIGTERM, says so and exits 42, so a test can tell that the signal reached
// the app and that its status came back.
func trap() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	fmt.Println("ready")
	s := <-c
	fmt.Println("got", s)
	os.Exit(42)
}

// leaveGrandchild starts a long sleep and says "ready <pid>". An orphan then exits as soon
// as the file $HOME/exit appears, leaving the sleep behind; a tree waits forever.
func leaveGrandchild(orphan bool) {
	pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "1000"}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
	if err != nil {
		fmt.Println("fork:", err)
		os.Exit(1)
	}
	fmt.Println("ready", pid)
	if !orphan {
		select {}
	}
	for {
		if _, err := os.Stat(os.Getenv("HOME") + "/exit"); err == nil {
			os.Exit(0)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
