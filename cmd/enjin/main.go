// Command enjin is the one binary of the enjin cloud. To run a cloud: `enjin up` runs a whole
// cloud on this machine; `enjin init` makes the trust chain, `enjin ring0` and `enjin ring1`
// run one ring each; `enjin guest` runs inside a VM as its ring 2 node; `enjin backup`,
// `restore` and `backups` save and restore a cloud's state; `enjin bench` measures enjin on
// this machine. To use one, the client commands (nodes, members, tenants, apps, vms, images,
// networks, logs, run, creds, verify, …; `enjin help` lists them all) talk to its meta API.
// Started with the sandbox helper's argument first (see main), the binary is that helper: it
// only confines and starts an app's instance, and exits 111 if it cannot.
//
// Exit status: 0 on success, 1 when the command failed, 2 for a usage error. Errors are one
// line on stderr, `enjin: …`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"enjin/supervisors/sandbox"
)

func main() {
	// The sandbox helper must do nothing else before it confines and starts a child. It
	// returns only on failure, with an error that reads "sandbox: <what>: <why>".
	if len(os.Args) > 1 && os.Args[1] == sandbox.HelperArg {
		fmt.Fprintln(os.Stderr, "enjin", sandbox.Exec())
		os.Exit(111)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
