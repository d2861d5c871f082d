package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"enjin/bus/broker"
)

func cmdInit(_ context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	dir := fs.String("state-dir", DefaultStateDir, "directory for keys and state (created 0700)")
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		return err
	}
	c, err := broker.Init(*dir)
	if err != nil {
		return fmt.Errorf("init %s: %w", *dir, err)
	}
	fmt.Fprintf(stdout, "trust chain in %s\n", c.Dir())
	fmt.Fprintf(stdout, "  operator %s (signing key %s)\n", c.Operator.Public, c.Operator.SigningPublic())
	names, err := c.Accounts()
	if err != nil {
		return err
	}
	for _, n := range names {
		a, err := c.Account(n)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  account %-6s %s\n", n, a.Public)
	}
	fmt.Fprintln(stdout, "the operator identity key (keys/operator.seed) is needed again only to change the operator; it may be moved offline")
	return nil
}
