package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"enjin/services/backup"
)

func backupCmd(g *globals) *cobra.Command {
	var out, dbURL, logLevel string
	c := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "write the whole state of the cloud of --state-dir to one file, while it runs or not",
		Long: `Write one file (a zstd-compressed tar, mode 0600: it holds every secret of the cloud) with
the trust chain, the inventory (pg_dump of the managed PostgreSQL, or of --database-url), and
each ring 1 node's keys, app packages, releases and HOME images, each listed with its sha256
in a manifest. The cloud may be running: the inventory is one consistent dump, and each
mounted HOME is frozen while its image is read, so apps' writes wait that long. The file
appears under its name only when complete. 'enjin restore' brings it back.`,
		Example: "  enjin backup --out /backups/enjin-$(date +%F).enjin",
		Args:    argsBetween(0, 0, "no arguments"),
	}
	c.Flags().StringVar(&out, "out", "", "the backup file to write (required)")
	c.Flags().StringVar(&dbURL, "database-url", os.Getenv("ENJIN_DATABASE_URL"), "the inventory's PostgreSQL, if not the managed one of --state-dir (default $ENJIN_DATABASE_URL)")
	c.Flags().StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	c.RunE = func(c *cobra.Command, _ []string) error {
		if out == "" {
			return usagef("backup: --out FILE is required")
		}
		log, err := logger(logLevel)
		if err != nil {
			return err
		}
		m, err := backup.Create(c.Context(), out, backup.Source{StateDir: g.stateDir, DatabaseURL: dbURL, Enjin: version(), Logger: log})
		if err != nil {
			return err
		}
		info, err := os.Stat(out)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "backed up %s to %s: %d entries, %.1f MiB; inventory from the %s database; %d HOME images (%d frozen while copied)\n",
			g.stateDir, out, len(m.Entries), float64(info.Size())/(1<<20), m.Database, m.Homes, m.Frozen)
		return nil
	}
	return c
}

func restoreCmd(g *globals) *cobra.Command {
	var dbURL, logLevel string
	c := &cobra.Command{
		Use:   "restore FILE --state-dir NEW",
		Short: "restore a backup into a new state dir, for 'enjin up --state-dir NEW'",
		Long: `Restore a file 'enjin backup' wrote into --state-dir, which must be absent or empty: the
trust chain and ring 1's state are written back, and a fresh managed PostgreSQL is made there
and the inventory loaded into it (or into the empty database --database-url names). Every
entry is checked against the backup's manifest; a corrupt or altered file, or one of another
format, is refused and nothing is left behind. Then 'enjin up --state-dir NEW' (with any
ports) runs the same cloud: same keys, same inventory, same apps and their HOMEs.`,
		Example: "  enjin restore /backups/enjin-2026-12-03.enjin --state-dir /var/lib/enjin-new",
		Args:    argsBetween(1, 1, "FILE"),
	}
	c.Flags().StringVar(&dbURL, "database-url", "", "an empty PostgreSQL database to load the inventory into, instead of a new managed one")
	c.Flags().StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	c.RunE = func(c *cobra.Command, args []string) error {
		if !c.Flags().Changed("state-dir") {
			return usagef("restore: --state-dir NEW is required (a new, empty state dir)")
		}
		log, err := logger(logLevel)
		if err != nil {
			return err
		}
		m, err := backup.Restore(c.Context(), args[0], backup.Target{StateDir: g.stateDir, DatabaseURL: dbURL, Logger: log})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "restored %s (made %s by enjin %s) into %s: %d entries; start it with: enjin up --state-dir %s\n",
			filepath.Base(args[0]), m.Created.Format("2006-01-02 15:04:05Z"), m.Enjin, g.stateDir, len(m.Entries), g.stateDir)
		return nil
	}
	return c
}
