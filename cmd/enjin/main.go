// Command enjin is the one binary of the enjin cloud: `enjin init` creates the trust chain in
// a state directory, and `enjin bench` measures the signed bus on this machine. Later
// commands (`enjin up`, `enjin ring0`, `enjin ring1`, client commands) join it.
//
// Exit status: 0 on success, 1 when the command failed, 2 for a usage error. Errors are one
// line on stderr.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"enjin/supervisors/process"
)

func main() {
	// The sandbox helper must do nothing else before it confines and starts a child. It
	// returns only on failure, with an error that reads "sandbox: <what>: <why>".
	if len(os.Args) > 1 && os.Args[1] == process.HelperArg {
		fmt.Fprintln(os.Stderr, "enjin", process.ExecSandbox())
		os.Exit(111)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	var u usageError
	switch {
	case err == nil:
	case errors.As(err, &u):
		fmt.Fprintln(os.Stderr, "enjin:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "enjin:", err)
		os.Exit(1)
	}
}
