package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"enjin/services/appapi"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// jobExit is a job's non-zero exit status, which the CLI exits with too.
type jobExit int

func (e jobExit) Error() string { return fmt.Sprintf("the job exited with status %d", int(e)) }

// jobCmd runs a one-off job in a sandbox of an app and streams its output.
func jobCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "run TENANT/APP -- COMMAND [ARG…]",
		Short: "run a one-off job in a sandbox of an app (its live release, env, HOME), output streamed, its exit status returned",
		Long: `Run COMMAND once (joined with spaces, run by sh -c) as an instance of the app runs — its
live release, environment, limits, HOME and tenant networks — in a sandbox of its own that the
router sends nothing to. Its stdout and stderr stream to this command's as they come (and to
the app's log, as process run.N); enjin exits with its exit status. Ctrl-C stops it.`,
		Example: `  enjin run acme/web -- ./manage migrate
  enjin run acme/web -- 'ls -l $HOME | wc -l'`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 || c.ArgsLenAtDash() != 1 {
				return usagef("run: want TENANT/APP -- COMMAND [ARG…]")
			}
			return nil
		},
	}
	c.RunE = func(c *cobra.Command, args []string) error {
		if _, _, err := appRef(args[0]); err != nil {
			return err
		}
		if err := runJob(c, g, args[0], strings.Join(args[1:], " ")); err != nil {
			return fmt.Errorf("run %s: %w", args[0], err)
		}
		return nil
	}
	return c
}

// runJob runs command as a one-off job of app ref (TENANT/APP), its output to c's.
func runJob(c *cobra.Command, g *globals, ref, command string) error {
	t, a, err := appRef(ref)
	if err != nil {
		return err
	}
	cl, err := g.client()
	if err != nil {
		return err
	}
	body, _ := json.Marshal(appapi.Job{Command: command})
	resp, err := cl.send(c.Context(), cl.stream, "POST", appapi.OpRun.Path(string(t), a), http.Header{"Content-Type": {"application/json"}}, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	code, err := streamJob(c.OutOrStdout(), c.ErrOrStderr(), resp.Body)
	switch {
	case c.Context().Err() != nil:
		return errors.New("interrupted: the job was stopped")
	case err != nil:
		return err
	case code != 0:
		return jobExit(code)
	}
	return nil
}

// streamJob writes a job's output lines to stdout and stderr as they arrive and returns the
// exit status its last line gives.
func streamJob(stdout, stderr io.Writer, r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct {
			Stream string `json:"stream"` // a line of output (appapi.LogLine)…
			Line   string `json:"line"`
			Exit   *int   `json:"exit"` // …or the end (appapi.JobEnd)
			Error  string `json:"error"`
		}
		if len(sc.Bytes()) == 0 || json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if l.Exit != nil {
			if l.Error != "" {
				return -1, fmt.Errorf("the job did not end by itself: %s", l.Error)
			}
			return *l.Exit, nil
		}
		w := stdout
		if l.Stream == "stderr" {
			w = stderr
		}
		fmt.Fprintln(w, l.Line)
	}
	if err := sc.Err(); err != nil {
		return -1, err
	}
	return -1, fmt.Errorf("the answer ended before the job did")
}

// cronCmd lists an app's scheduled jobs and how their last runs went.
func cronCmd(g *globals) *cobra.Command {
	return appReadCmd(g, "cron TENANT/APP", "the app's scheduled jobs (enjin.json cron): next run, last run's exit status", appapi.OpCron, cronTable)
}

// cronTable writes an app's scheduled jobs (appapi.CronList) as a table.
func cronTable(w io.Writer, raw json.RawMessage) error {
	var r appapi.CronList
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	tw := newTable(w, "NAME\tSCHEDULE\tNEXT\tLAST RUN\tEXIT\tRUNS\tSKIPPED\tCOMMAND")
	for _, j := range r.Cron {
		next, last, exit := "-", "never", "-"
		if !j.Next.IsZero() {
			next = j.Next.Local().Format(time.DateTime)
		}
		if l := j.Last; l != nil {
			last, exit = l.Started.Local().Format(time.DateTime), strconv.Itoa(l.Exit)
			if l.Error != "" {
				exit += " (" + l.Error + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", j.Name, j.Schedule, next, last, exit, j.Runs, j.Skipped, j.Command)
	}
	return tw.Flush()
}
