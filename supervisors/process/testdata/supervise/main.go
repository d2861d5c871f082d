// Command supervise runs one detached child under a process.Supervisor, for the tests of
// adoption: `supervise PIDFILE PROGRAM ARG…` prints "started PID" and supervises until killed.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"enjin/supervisors/process"
)

func main() {
	s := process.New(process.Spec{Name: "child", Path: os.Args[2], Args: os.Args[3:], Detach: true, PIDFile: os.Args[1]},
		process.Backoff{Min: 10 * time.Millisecond}, time.Second, nil)
	go func() { // ends with the process
		<-s.Started()
		fmt.Println("started", s.PID())
	}()
	if err := s.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
