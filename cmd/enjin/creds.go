package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func credsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:     "creds",
		Short:   "write credentials (creds ops: for the nats CLI)",
		Example: "  enjin creds ops --out me.creds",
	}
	c.AddCommand(credsOpsCmd(g))
	return c
}

func credsOpsCmd(g *globals) *cobra.Command {
	var opName, outPath string
	c := &cobra.Command{
		Use:   "ops",
		Short: "write a .creds file for the nats CLI: subscribe ops.>, publish nothing",
		Example: `  enjin creds ops --out me.creds
  nats --creds me.creds -s nats://127.0.0.1:4222 sub 'ops.>'`,
		Args: argsBetween(0, 0, "no arguments"),
	}
	c.Flags().StringVar(&opName, "name", "ops", "operator name (a slug)")
	c.Flags().StringVar(&outPath, "out", "ops.creds", "file to write (mode 0600)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		var resp struct {
			Creds string `json:"creds"`
		}
		if err := cl.do(c.Context(), "POST", "/v1/creds/ops", nil, map[string]string{"name": opName}, &resp); err != nil {
			return err
		}
		if resp.Creds == "" {
			return errors.New("creds ops: empty answer")
		}
		if err := writeSecret(outPath, resp.Creds); err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "wrote %s; watch with: nats --creds %s -s <nats url> sub 'ops.>'\n", outPath, outPath)
		return nil
	}
	return c
}

// writeSecret writes s to path, readable by its owner only, even if the file was there.
func writeSecret(path, s string) error {
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}
