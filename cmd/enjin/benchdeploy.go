package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"enjin"
)

// deployPhases are the steps of one deploy as the CLI sees them, in milliseconds from the
// command's start: packed (client), unpacked (the node has the bundle: upload, unpack),
// starting, healthy, live (traffic moved), routed (the first 200 through the router after).
type deployPhases struct {
	Packed   float64 `json:"packed_ms"`
	Unpacked float64 `json:"unpacked_ms"`
	Starting float64 `json:"starting_ms"`
	Healthy  float64 `json:"healthy_ms"`
	Live     float64 `json:"live_ms"`
	Routed   float64 `json:"routed_ms"`
}

// deployFigures are `enjin bench deploy`'s results: each run, and the medians.
type deployFigures struct {
	App          string         `json:"app"`
	Changed      []deployPhases `json:"changed"`   // a small file changed before each: it alone is sent
	Rebuilt      []deployPhases `json:"rebuilt"`   // the largest file changed before each (a new build): it is sent
	Unchanged    []deployPhases `json:"unchanged"` // the same directory again: deployed by digest
	ChangedP50   deployPhases   `json:"changed_p50"`
	RebuiltP50   deployPhases   `json:"rebuilt_p50"`
	UnchangedP50 deployPhases   `json:"unchanged_p50"`
}

func benchDeployCmd(g *globals) *cobra.Command {
	var runs int
	var out string
	c := &cobra.Command{
		Use:   "deploy TENANT/APP DIR",
		Short: "deploy DIR as an app again and again, timing each phase from the command's start to the first 200 through the router",
		Long: `Deploys a copy of DIR to TENANT/APP on the running cloud (the state dir's), --runs times with
one file changed before each (packed and uploaded), then --runs times unchanged (deployed by
digest), and prints when each phase was reached, from the command's start: packed, unpacked
(the node has the bundle), starting, healthy, live (traffic moved) and routed (the first 200
through the router after). DIR itself is not changed.`,
		Example: "  enjin bench deploy acme/hello test/sampleapp-dir --runs 5 -o json",
		Args:    argsBetween(2, 2, "TENANT/APP DIR"),
		RunE: func(c *cobra.Command, args []string) error {
			t, a, err := appRef(args[0])
			if err != nil {
				return err
			}
			if runs < 1 || (out != "text" && out != "json") {
				return usagef("bench deploy: --runs must be positive, -o text or json")
			}
			f, err := benchDeploy(c.Context(), g, t, a, args[1], runs)
			if err != nil {
				return err
			}
			if out == "json" {
				return json.NewEncoder(c.OutOrStdout()).Encode(f)
			}
			printDeployFigures(c.OutOrStdout(), f)
			return nil
		},
	}
	c.Flags().IntVar(&runs, "runs", 5, "deploys of each kind")
	c.Flags().StringVarP(&out, "output", "o", "text", "output format: text or json")
	return c
}

func benchDeploy(ctx context.Context, g *globals, t enjin.TenantID, a, dir string, runs int) (deployFigures, error) {
	f := deployFigures{App: string(t) + "/" + a}
	ep, err := readEndpoints(g.stateDir)
	if err != nil || ep.Router == "" {
		return f, fmt.Errorf("bench deploy: no running cloud's router in %s: %v", g.stateDir, err)
	}
	cl, err := g.client()
	if err != nil {
		return f, err
	}
	work, err := os.MkdirTemp("", "enjin-bench-deploy-")
	if err != nil {
		return f, err
	}
	defer os.RemoveAll(work)
	if err := os.CopyFS(work, os.DirFS(dir)); err != nil {
		return f, fmt.Errorf("bench deploy: copy %s: %w", dir, err)
	}
	host := fmt.Sprintf("%s.%s.%s", a, t, ep.AppsDomain)
	big, err := largestFile(work)
	if err != nil {
		return f, err
	}
	kinds := []struct {
		name string
		into *[]deployPhases
		edit func(i int) error
	}{
		{"a file changed", &f.Changed, func(i int) error {
			return os.WriteFile(filepath.Join(work, ".enjin-bench"), fmt.Appendf(nil, "%d %d\n", time.Now().UnixNano(), i), 0o644)
		}},
		{"largest file changed", &f.Rebuilt, func(i int) error {
			b, err := os.OpenFile(big, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer b.Close()
			_, err = fmt.Fprintf(b, "%08d", i) // after an ELF's end, a script's last line: harmless either way
			return err
		}},
		{"unchanged", &f.Unchanged, func(int) error { return nil }},
	}
	for k, kind := range kinds {
		for i := range runs {
			if err := kind.edit(k*runs + i); err != nil {
				return f, err
			}
			p, err := timeDeploy(ctx, cl, t, a, work, "http://"+ep.Router+"/", host)
			if err != nil {
				return f, fmt.Errorf("bench deploy: %s, run %d: %w", kind.name, i+1, err)
			}
			*kind.into = append(*kind.into, p)
			fmt.Fprintf(os.Stderr, "bench deploy: %s, run %d/%d: routed after %.0f ms\n", kind.name, i+1, runs, p.Routed)
		}
	}
	f.ChangedP50, f.RebuiltP50, f.UnchangedP50 = phasesMedian(f.Changed), phasesMedian(f.Rebuilt), phasesMedian(f.Unchanged)
	return f, nil
}

// largestFile is the path of the largest regular file under dir.
func largestFile(dir string) (string, error) {
	var best string
	var size int64 = -1
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if fi, err := d.Info(); err == nil && fi.Size() > size {
			best, size = p, fi.Size()
		}
		return nil
	})
	if err == nil && best == "" {
		err = fmt.Errorf("bench deploy: %s holds no file", dir)
	}
	return best, err
}

// timeDeploy deploys dir once, noting when each progress line arrives, then asks the router
// until it answers 200.
func timeDeploy(ctx context.Context, cl *client, t enjin.TenantID, a, dir, url, host string) (deployPhases, error) {
	start := time.Now()
	lw := &lineTimes{start: start, at: map[string]float64{}}
	d := deployment{cl: cl, tenant: t, app: a, progress: lw, detail: io.Discard}
	if _, err := d.run(ctx, dir); err != nil {
		return deployPhases{}, err
	}
	live := ms(time.Since(start))
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		req.Host = host
		resp, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if ctx.Err() != nil || time.Since(start) > time.Minute {
			return deployPhases{}, fmt.Errorf("no 200 through the router within a minute of the deploy")
		}
	}
	p := deployPhases{Packed: lw.get("packed", "unchanged"), Unpacked: lw.get("uploaded", "unchanged"), Starting: lw.get("starting"),
		Healthy: lw.get("healthy"), Live: live, Routed: ms(time.Since(start))}
	return p, nil
}

// lineTimes notes when lines of deploy progress arrive, by a word in them.
type lineTimes struct {
	start time.Time
	mu    sync.Mutex
	at    map[string]float64
}

func (l *lineTimes) Write(b []byte) (int, error) {
	now := ms(time.Since(l.start))
	l.mu.Lock()
	defer l.mu.Unlock()
	for line := range strings.Lines(string(b)) {
		for _, w := range []string{"packed", "uploaded", "unchanged", "starting", "healthy"} {
			if _, seen := l.at[w]; !seen && strings.Contains(line, w) {
				l.at[w] = now
			}
		}
	}
	return len(b), nil
}

// get is when the first of words was seen; 0 if none was.
func (l *lineTimes) get(words ...string) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range words {
		if v, ok := l.at[w]; ok {
			return v
		}
	}
	return 0
}

func phasesMedian(ps []deployPhases) deployPhases {
	col := func(get func(deployPhases) float64) float64 {
		var v []float64
		for _, p := range ps {
			v = append(v, get(p))
		}
		return median(v)
	}
	return deployPhases{
		Packed: col(func(p deployPhases) float64 { return p.Packed }), Unpacked: col(func(p deployPhases) float64 { return p.Unpacked }),
		Starting: col(func(p deployPhases) float64 { return p.Starting }), Healthy: col(func(p deployPhases) float64 { return p.Healthy }),
		Live: col(func(p deployPhases) float64 { return p.Live }), Routed: col(func(p deployPhases) float64 { return p.Routed }),
	}
}

func printDeployFigures(w io.Writer, f deployFigures) {
	fmt.Fprintf(w, "%s: ms from the command's start, median of %d runs each\n", f.App, len(f.Changed))
	fmt.Fprintf(w, "%-16s %8s %9s %9s %8s %7s %7s\n", "", "packed", "unpacked", "starting", "healthy", "live", "routed")
	for _, r := range []struct {
		name string
		p    deployPhases
	}{{"a file changed", f.ChangedP50}, {"largest changed", f.RebuiltP50}, {"unchanged", f.UnchangedP50}} {
		fmt.Fprintf(w, "%-16s %8.0f %9.0f %9.0f %8.0f %7.0f %7.0f\n", r.name, r.p.Packed, r.p.Unpacked, r.p.Starting, r.p.Healthy, r.p.Live, r.p.Routed)
	}
}
