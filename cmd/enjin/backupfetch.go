package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"enjin/services/backup"
)

// backupsFetchCmd fetches a backup over the API, checking it as it arrives.
func backupsFetchCmd(g *globals) *cobra.Command {
	var out, into string
	var keep int
	c := &cobra.Command{
		Use:   "fetch (--out FILE | --into DIR [--keep N])",
		Short: "fetch a backup of the whole cloud over the API, checked as it arrives",
		Long: `Fetch a backup of the whole cloud from ring 0's API (GET /v1/backup: the admin's token or
the backup credential) and check every entry against its manifest as it arrives; a backup cut
short or altered is deleted and the command fails. --out writes FILE; --into writes
DIR/enjin-<UTC time>.enjin and then deletes the oldest of those beyond --keep. The file is
written under a temporary name and renamed once whole and checked. 'enjin restore FILE'
restores it.`,
		Example: `  enjin backups fetch --out /backups/enjin.enjin
  enjin --api https://ring0.example:7070 --ca ca.crt backups fetch --into /backups --keep 30`,
		Args: argsBetween(0, 0, "no arguments"),
	}
	c.Flags().StringVar(&out, "out", "", "the file to write")
	c.Flags().StringVar(&into, "into", "", "the directory to write a new, time-named backup into")
	c.Flags().IntVar(&keep, "keep", 0, "with --into: how many backups to keep there (0: all)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		switch {
		case (out == "") == (into == ""):
			return usagef("backups fetch: give one of --out FILE and --into DIR")
		case keep < 0 || keep > 0 && into == "":
			return usagef("backups fetch: --keep N goes with --into, N ≥ 1")
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		if into != "" {
			if err := os.MkdirAll(into, 0o700); err != nil {
				return fmt.Errorf("backups fetch: %w", err)
			}
			out = filepath.Join(into, "enjin-"+time.Now().UTC().Format("20060102T150405Z")+".enjin")
		}
		start := time.Now()
		n, m, err := fetchBackup(c, cl, out)
		if err != nil {
			return fmt.Errorf("backups fetch: %w", err)
		}
		removed := 0
		if keep > 0 {
			if removed, err = pruneBackups(into, keep); err != nil {
				return fmt.Errorf("backups fetch: %w", err)
			}
		}
		fmt.Fprintf(c.OutOrStdout(), "backup %s: %.1f MiB, %d entries, checked, in %.1f s", out, float64(n)/(1<<20), len(m.Entries), time.Since(start).Seconds())
		if removed > 0 {
			fmt.Fprintf(c.OutOrStdout(), "; %d older removed", removed)
		}
		fmt.Fprintln(c.OutOrStdout())
		return nil
	}
	return c
}

// fetchBackup streams GET /v1/backup into out (through a temporary file beside it), checking
// it as it arrives, and returns its size and manifest.
func fetchBackup(c *cobra.Command, cl *client, out string) (int64, *backup.Manifest, error) {
	resp, err := cl.send(c.Context(), cl.stream, "GET", "/v1/backup", nil, nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".part-") // 0600
	if err != nil {
		return 0, nil, err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	m, err := backup.Check(c.Context(), io.TeeReader(resp.Body, tmp))
	if err != nil {
		return 0, nil, err
	}
	info, err := tmp.Stat()
	if err != nil {
		return 0, nil, err
	}
	if err := errors.Join(tmp.Sync(), tmp.Close(), os.Rename(tmp.Name(), out)); err != nil {
		return 0, nil, err
	}
	done = true
	return info.Size(), m, nil
}

// pruneBackups deletes the oldest enjin-*.enjin files in dir beyond keep (their names sort
// by time) and whatever an interrupted fetch left there.
func pruneBackups(dir string, keep int) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, ".enjin-") && strings.Contains(n, ".part-"):
			os.Remove(filepath.Join(dir, n))
		case strings.HasPrefix(n, "enjin-") && strings.HasSuffix(n, ".enjin") && e.Type().IsRegular():
			names = append(names, n)
		}
	}
	slices.Sort(names)
	removed := 0
	for len(names) > keep {
		if err := os.Remove(filepath.Join(dir, names[0])); err != nil {
			return removed, err
		}
		names, removed = names[1:], removed+1
	}
	return removed, nil
}
