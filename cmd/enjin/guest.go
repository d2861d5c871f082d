package main

import (
	"github.com/spf13/cobra"
	"io"

	"enjin/guest"
)

func guestCmd() *cobra.Command {
	var metaPath, logLevel string
	c := &cobra.Command{
		Use:   "guest",
		Short: "run inside an enjin VM: its signed heartbeats as a ring 2 node",
		Long: `Run inside an enjin VM, started by the guest image's /init (deploy/guest-image.sh). It reads
the metadata the host put in fw_cfg (` + guest.FwCfgName + `), connects to the bus as the VM's
own user and publishes a heartbeat signed with the VM's attestation key every period,
reconnecting for as long as it runs. On SIGTERM it says the node is stopping and exits.

The metadata holds the VM's secrets; it never travels on a command line.`,
		Example: `  enjin guest
  enjin guest --meta /tmp/meta.json
  enjin guest net`,
		Args: argsBetween(0, 0, "no arguments"),
	}
	c.PersistentFlags().StringVar(&metaPath, "meta", guest.MetaPath, "the metadata file")
	c.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	c.RunE = func(c *cobra.Command, _ []string) error {
		log, err := logger(logLevel)
		if err != nil {
			return err
		}
		m, err := guest.ReadMeta(metaPath)
		if err != nil {
			return err
		}
		a, err := guest.New(guest.Config{Meta: m, Logger: log})
		if err != nil {
			return err
		}
		return a.Run(c.Context())
	}
	c.AddCommand(guestNetCmd(&metaPath), guestUserDataCmd(&metaPath))
	return c
}

func guestNetCmd(metaPath *string) *cobra.Command {
	return &cobra.Command{
		Use:   "net",
		Short: "print the VM's network configuration from its metadata, for /init",
		Long: `Print the VM's network configuration from its metadata, one "key value" a line for a shell to
read: "hostname NAME", then "address PREFIX" for each address and "gateway ADDR" if there is
one. No address line means: ask DHCP. Every value is checked first; malformed metadata is an
error and prints nothing.`,
		Example: `  enjin guest net
  enjin guest net --meta /tmp/meta.json`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			m, err := guest.ReadMeta(*metaPath)
			if err != nil {
				return err
			}
			return m.WriteNet(c.OutOrStdout())
		},
	}
}

func guestUserDataCmd(metaPath *string) *cobra.Command {
	return &cobra.Command{
		Use:   "user-data",
		Short: "print the user data the VM was created with, for /init to run",
		Args:  argsBetween(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			m, err := guest.ReadMeta(*metaPath)
			if err != nil {
				return err
			}
			_, err = io.WriteString(c.OutOrStdout(), m.UserData)
			return err
		},
	}
}
