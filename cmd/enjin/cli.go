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
		"init":  {"create the trust chain (operator, accounts, keys) in a state directory", cmdInit},
		"bench": {"measure enjin on this machine (bench verify)", cmdBench},
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
		fmt.Fprintf(w, "  %-8s %s\n", n, cs[n].summary)
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
