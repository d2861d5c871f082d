package main

import (
	"io"
	"net"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"enjin/guest"
	"enjin/supervisors/netseg"
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

A VM whose metadata makes it a ring 1 host (ring 0 started it as one: enjin nodes grow)
joins ring 0 with the one-time token there instead, and runs as a ring 1 node hosting apps.

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
		if m.Host != nil {
			return guestHost(c, m, log)
		}
		a, err := guest.New(guest.Config{Meta: m, Logger: log})
		if err != nil {
			return err
		}
		return a.Run(c.Context())
	}
	c.AddCommand(guestNetCmd(&metaPath), guestUserDataCmd(&metaPath), guestAnnounceCmd(&metaPath))
	return c
}

func guestAnnounceCmd(metaPath *string) *cobra.Command {
	return &cobra.Command{
		Use:   "announce",
		Short: "announce the VM's addresses on its tenant networks, for /init once its NICs are up",
		Long: `Announce each address of each NIC on the tenant's networks, as the metadata gives them, to the
network: a gratuitous ARP for IPv4, an unsolicited neighbour advertisement for IPv6. An
address another VM or app had a moment ago is then this VM's at once for their neighbours.`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			m, err := guest.ReadMeta(*metaPath)
			if err != nil {
				return err
			}
			ifs, err := net.Interfaces()
			if err != nil {
				return err
			}
			for _, l := range m.Links {
				for _, ifi := range ifs {
					if !strings.EqualFold(ifi.HardwareAddr.String(), l.MAC) {
						continue
					}
					var addrs []netip.Addr
					for _, p := range l.Addresses {
						addrs = append(addrs, p.Addr())
					}
					if err := netseg.Announce("", ifi.Name, ifi.HardwareAddr, addrs); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
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
