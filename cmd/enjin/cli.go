package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// usageError is a mistake in how the command was called (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// command is one subcommand: its flags are parsed from args and it runs.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"up":           {"run an all-in-one cloud here: managed PostgreSQL, ring 0, one ring 1 node", cmdUp},
		"init":         {"create the trust chain (operator, accounts, keys) in a state directory", cmdInit},
		"ring0":        {"run ring 0 (broker, inventory, meta API, liveness)", cmdRing0},
		"ring1":        {"run a ring 1 node (launched by ring 0, or --join TOKEN --ring0 URL)", cmdRing1},
		"nodes":        {"list nodes and their state", cmdNodes},
		"compartments": {"list, create, show and delete compartments", cmdCompartments},
		"tenants":      {"list, create, show and delete tenants", cmdTenants},
		"apps":         {"deploy apps and manage them: ls, ps, scale, env, releases, rollback, destroy", cmdApps},
		"logs":         {"an app's log lines (TENANT/APP, -f to follow)", cmdLogs},
		"creds":        {"write credentials (creds ops: for the nats CLI)", cmdCreds},
		"verify":       {"re-verify every stored observation's signature", cmdVerify},
		"bench":        {"measure enjin on this machine (bench verify, bench ingest)", cmdBench},
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(os.Stdout)
		return nil
	}
	c, ok := commands()[args[0]]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q (try enjin --help)", args[0])}
	}
	return c.run(ctx, args[1:], os.Stdout)
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: enjin <command> [flags]\n\ncommands:")
	cs := commands()
	names := make([]string, 0, len(cs))
	for n := range cs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, cs[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'enjin <command> --help' for a command's flags.")
}

// parseFlags parses args into fs, turning -h into a printed help (and nil error sentinel).
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (help bool, err error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintf(stdout, "usage: enjin %s [flags]\n\nflags:\n", fs.Name())
			fs.PrintDefaults()
			return true, nil
		}
		return false, usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() > 0 {
		return false, usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), strings.Join(fs.Args(), " "))}
	}
	return false, nil
}

// DefaultStateDir is where enjin keeps its state unless told otherwise.
const DefaultStateDir = "./var/enjin"
