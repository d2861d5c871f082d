package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"enjin/bus/broker"
)

func initCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "create the trust chain (operator, accounts, keys) in the state directory",
		Long: `Create the trust chain under <state-dir>/keys (mode 0700, seeds 0600): the operator, its
accounts and their signing keys. Keys already there are kept, so running it again changes
nothing. 'enjin up' does this for you.`,
		Example: "  enjin init --state-dir /var/lib/enjin",
		Args:    argsBetween(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			ch, err := broker.Init(g.stateDir)
			if err != nil {
				return fmt.Errorf("init %s: %w", g.stateDir, err)
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "trust chain in %s\n", ch.Dir())
			fmt.Fprintf(w, "  operator %s (signing key %s)\n", ch.Operator.Public, ch.Operator.SigningPublic())
			names, err := ch.Accounts()
			if err != nil {
				return err
			}
			for _, n := range names {
				a, err := ch.Account(n)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "  account %-6s %s\n", n, a.Public)
			}
			fmt.Fprintln(w, "the operator identity key (keys/operator.seed) is needed again only to change the operator; it may be moved offline")
			return nil
		},
	}
}
