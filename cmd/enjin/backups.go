package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"enjin"
	"enjin/services/appapi"
	"enjin/services/apphost"
)

// backupsApp is the system tenant's app that runs the scheduled backups.
const backupsApp = "backups"

// backupsCmd schedules backups as a job of the system tenant and fetches them over the API.
func backupsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "backups",
		Short: "scheduled backups (a job of the system tenant) and backups fetched over the API",
		Long: `Scheduled backups run as the cloud's own tenant, ` + string(enjin.SystemTenant) + `, in the same sandbox as any
tenant's app: its app ` + backupsApp + ` has a cron job that fetches a backup of the whole cloud from
ring 0's API (GET /v1/backup) through its node's relay — the only sandboxes the node lets reach
it — with a credential that may fetch backups and nothing else, and keeps the newest in the
app's HOME (its disk quota bounds them). 'enjin restore FILE' restores one.`,
	}
	c.AddCommand(backupsScheduleCmd(g), backupsUnscheduleCmd(g), backupsLsCmd(g), backupsFetchCmd(g))
	return c
}

func backupsScheduleCmd(g *globals) *cobra.Command {
	var keep, diskMB int
	c := &cobra.Command{
		Use:   "schedule SCHEDULE",
		Short: "back the cloud up on a cron schedule, keeping the newest backups",
		Long: `Make (or update) the system tenant's backup job: SCHEDULE is a cron schedule in the host's
time zone (five fields, or @daily, @hourly, @every 6h). Each run fetches a whole backup and
keeps the newest --keep in the job's HOME, whose size is --disk-mb. A new credential is issued
each time; the previous one stops working.`,
		Example: `  enjin backups schedule @daily --keep 7
  enjin backups schedule '30 3 * * *' --keep 14 --disk-mb 8192`,
		Args: argsBetween(1, 1, "SCHEDULE"),
	}
	c.Flags().IntVar(&keep, "keep", 7, "how many backups to keep")
	c.Flags().IntVar(&diskMB, "disk-mb", 4096, "the size of the job's HOME, which holds the backups (MiB)")
	c.RunE = func(c *cobra.Command, args []string) error {
		if keep < 1 || keep > 1000 {
			return usagef("backups schedule: --keep %d: want 1 to 1000", keep)
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		dir, err := backupsBundle(args[0], keep, diskMB)
		if err != nil {
			return fmt.Errorf("backups schedule: %w", err)
		}
		defer os.RemoveAll(dir)
		var issued systemBackups
		if err := cl.do(c.Context(), "POST", "/v1/system/backups", nil, nil, &issued); err != nil {
			return fmt.Errorf("backups schedule: %w", err)
		}
		d := deployment{cl: cl, tenant: issued.Tenant, app: backupsApp, progress: io.Discard, detail: c.ErrOrStderr()}
		if _, err := d.run(c.Context(), dir); err != nil {
			return fmt.Errorf("backups schedule: deploy %s/%s: %w", issued.Tenant, backupsApp, err)
		}
		var rel appapi.Release
		env := appapi.EnvPatch{Set: map[string]string{"BACKUP_TOKEN": issued.Token}, Unset: []string{}}
		if err := cl.do(c.Context(), "PATCH", appapi.OpPatchEnv.Path(string(issued.Tenant), backupsApp), nil, env, &rel); err != nil {
			return fmt.Errorf("backups schedule: the job's credential: %w", err)
		}
		fmt.Fprintf(c.OutOrStdout(), "backups scheduled: %s, keeping %d (job %s/%s, release %d; see enjin backups ls)\n",
			args[0], keep, issued.Tenant, backupsApp, rel.Number)
		return nil
	}
	return c
}

// systemBackups is POST /v1/system/backups' answer.
type systemBackups struct {
	Tenant enjin.TenantID `json:"tenant"`
	Token  string         `json:"token"`
}

// backupsBundle writes the backup job's app to a new temporary directory: a Procfile and an
// enjin.json with the schedule. The job runs the enjin binary its node shows the system
// tenant's sandboxes (apphost.SystemBinary), reads its credential from its environment
// (BACKUP_TOKEN) and ring 0's API and CA from what its node gives those sandboxes (ENJIN_API,
// ENJIN_CA).
func backupsBundle(schedule string, keep, diskMB int) (string, error) {
	dir, err := os.MkdirTemp("", "enjin-backups-")
	if err != nil {
		return "", err
	}
	command := `ENJIN_TOKEN="$BACKUP_TOKEN" exec ` + apphost.SystemBinary + ` backups fetch --into "$HOME/backups" --keep ` + strconv.Itoa(keep)
	manifest := map[string]any{"instances": map[string]int{"fetch": 0}, "disk_mb": diskMB,
		"cron": map[string]any{"backup": map[string]string{"schedule": schedule, "command": command}}}
	err = errors.Join(os.WriteFile(filepath.Join(dir, "Procfile"), []byte("fetch: "+command+"\n"), 0o644),
		writeJSONFile(filepath.Join(dir, "enjin.json"), manifest))
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

func backupsUnscheduleCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "unschedule",
		Short: "stop the scheduled backups: revoke the job's credential and destroy the job with the backups it kept",
		Args:  argsBetween(0, 0, "no arguments"),
	}
	c.RunE = func(c *cobra.Command, _ []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		if err := cl.do(c.Context(), "DELETE", "/v1/system/backups", nil, nil, nil); err != nil && !isStatus(err, http.StatusNotFound) {
			return fmt.Errorf("backups unschedule: %w", err)
		}
		if err := cl.do(c.Context(), "DELETE", appapi.OpDestroy.Path(string(enjin.SystemTenant), backupsApp), nil, nil, nil); err != nil && !isStatus(err, http.StatusNotFound) {
			return fmt.Errorf("backups unschedule: %w", err)
		}
		fmt.Fprintln(c.OutOrStdout(), "backups unscheduled")
		return nil
	}
	return c
}

func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}

func backupsLsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "ls",
		Short: "the backups the scheduled job keeps, newest first, and how its runs went",
		Args:  argsBetween(0, 0, "no arguments"),
	}
	c.RunE = func(c *cobra.Command, _ []string) error {
		ref := string(enjin.SystemTenant) + "/" + backupsApp
		if err := runJob(c, g, ref, `cd "$HOME/backups" 2>/dev/null && ls -lt enjin-*.enjin 2>/dev/null || echo "no backups yet"`); err != nil {
			return fmt.Errorf("backups ls: %w", err)
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := cl.do(c.Context(), "GET", appapi.OpCron.Path(string(enjin.SystemTenant), backupsApp), nil, nil, &raw); err != nil {
			return fmt.Errorf("backups ls: %w", err)
		}
		fmt.Fprintln(c.OutOrStdout())
		return cronTable(c.OutOrStdout(), raw)
	}
	return c
}

// writeJSONFile writes v as JSON to a new file at p.
func writeJSONFile(p string, v any) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	err = writeJSON(f, v)
	return errors.Join(err, f.Close())
}
