package main

import (
	"bufio"
	"encoding/json"
	"enjin/services/appapi"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"
)

func logsCmd(g *globals) *cobra.Command {
	var follow bool
	var lines int
	c := &cobra.Command{
		Use:   "logs TENANT/APP",
		Short: "an app's log lines, from every instance (-f to follow)",
		Example: `  enjin logs acme/hello -f
  enjin logs acme/hello --lines 1000 -o json`,
		Args: argsBetween(1, 1, "TENANT/APP"),
	}
	out := outputFlag(c)
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	c.Flags().IntVar(&lines, "lines", 100, "how many past lines")
	c.RunE = func(c *cobra.Command, args []string) error {
		t, a, err := appRef(args[0])
		if err != nil {
			return err
		}
		if lines < 0 {
			return usagef("logs: --lines %d: want 0 or more", lines)
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		q := url.Values{"lines": {strconv.Itoa(lines)}}
		hc := cl.hc
		if follow {
			q.Set("follow", "1")
			hc = cl.stream // a followed log is a stream
		}
		resp, err := cl.send(c.Context(), hc, "GET", appapi.OpLogs.Path(string(t), a)+"?"+q.Encode(), nil, nil)
		if err != nil {
			return fmt.Errorf("logs %s: %w", args[0], err)
		}
		defer resp.Body.Close()
		err = copyLogs(c.OutOrStdout(), resp.Body, *out)
		if c.Context().Err() != nil {
			return nil // interrupted while following
		}
		if err != nil {
			return fmt.Errorf("logs %s: %w", args[0], err)
		}
		return nil
	}
	return c
}

// copyLogs prints the newline-delimited JSON log lines of r: as they came with -o json, else
// as text.
func copyLogs(w io.Writer, r io.Reader, o format) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		if o.json() {
			if _, err := fmt.Fprintf(w, "%s\n", sc.Bytes()); err != nil {
				return err
			}
			continue
		}
		var l appapi.LogLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			who := l.Instance
			if l.Process != "" {
				who = fmt.Sprintf("%s.r%d", l.Process, l.Release) // web.0.r3: type, index, release
			}
			if l.Host != "" { // an app spread over hosts: web.1.r3@ring1-h2
				who += "@" + l.Host
			}
			fmt.Fprintf(w, "%s %s[%s]: %s\n", l.Time.Local().Format("15:04:05.000"), who, l.Stream, l.Line)
		}
	}
	return sc.Err()
}
