package bench

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
)

// DeployPhases are the steps of one deploy as the CLI sees them, in milliseconds from the
// command's start: packed (client), unpacked (the node has the bundle: upload, unpack),
// starting, healthy, live (traffic moved), routed (the first 200 through the router after).
type DeployPhases struct {
	Packed   float64 `json:"packed_ms"`
	Unpacked float64 `json:"unpacked_ms"`
	Starting float64 `json:"starting_ms"`
	Healthy  float64 `json:"healthy_ms"`
	Live     float64 `json:"live_ms"`
	Routed   float64 `json:"routed_ms"`
}

// DeployFigures are Deploy's results: each run, and the medians.
type DeployFigures struct {
	App          string         `json:"app"`
	Changed      []DeployPhases `json:"changed"`   // a small file changed before each: it alone is sent
	Rebuilt      []DeployPhases `json:"rebuilt"`   // the largest file changed before each (a new build): it is sent
	Unchanged    []DeployPhases `json:"unchanged"` // the same directory again: deployed by digest
	ChangedP50   DeployPhases   `json:"changed_p50"`
	RebuiltP50   DeployPhases   `json:"rebuilt_p50"`
	UnchangedP50 DeployPhases   `json:"unchanged_p50"`
}

// DeployOptions are the options of Deploy.
type DeployOptions struct {
	App  string // TENANT/APP, as the figures name it
	Dir  string // the app's directory, copied: Dir itself is not changed
	Runs int    // deploys of each kind
	// Deploy deploys dir as the app once, writing the CLI's progress lines (packed,
	// uploaded, starting, healthy, …) to progress as they come; `enjin apps deploy` does.
	Deploy   func(ctx context.Context, dir string, progress io.Writer) error
	URL      string    // the router's, "http://127.0.0.1:7080/"
	Host     string    // the app's host name there
	Output   string    // "text" or "json"
	Progress io.Writer // a line a run; nil: none
}

// Check returns a UsageError if the options cannot make a run.
func (o DeployOptions) Check() error {
	if o.Runs < 1 || (o.Output != "text" && o.Output != "json") {
		return usagef("bench deploy: --runs must be positive, -o text or json")
	}
	return nil
}

// Deploy deploys a copy of Dir as App Runs times with a small file changed before each (it
// alone is sent), Runs times with the largest file changed (a new build), then Runs times
// unchanged (deployed by digest), and prints when each phase was reached, from the start of
// each deploy: packed, unpacked (the node has the bundle), starting, healthy, live (traffic
// moved) and routed (the first 200 through the router after), with the medians.
func Deploy(ctx context.Context, opt DeployOptions, w io.Writer) error {
	if err := opt.Check(); err != nil {
		return err
	}
	f, err := benchDeploy(ctx, opt)
	if err != nil {
		return err
	}
	if opt.Output == "json" {
		return json.NewEncoder(w).Encode(f)
	}
	printDeployFigures(w, f)
	return nil
}

func benchDeploy(ctx context.Context, opt DeployOptions) (DeployFigures, error) {
	f := DeployFigures{App: opt.App}
	progress := progressTo(opt.Progress, "bench deploy: ")
	work, err := os.MkdirTemp("", "enjin-bench-deploy-")
	if err != nil {
		return f, err
	}
	defer os.RemoveAll(work)
	if err := os.CopyFS(work, os.DirFS(opt.Dir)); err != nil {
		return f, fmt.Errorf("bench deploy: copy %s: %w", opt.Dir, err)
	}
	big, err := largestFile(work)
	if err != nil {
		return f, err
	}
	kinds := []struct {
		name string
		into *[]DeployPhases
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
	runs := opt.Runs
	for k, kind := range kinds {
		for i := range runs {
			if err := kind.edit(k*runs + i); err != nil {
				return f, err
			}
			p, err := timeDeploy(ctx, opt, work)
			if err != nil {
				return f, fmt.Errorf("bench deploy: %s, run %d: %w", kind.name, i+1, err)
			}
			*kind.into = append(*kind.into, p)
			progress("%s, run %d/%d: routed after %.0f ms", kind.name, i+1, runs, p.Routed)
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

// timeDeploy deploys dir once (opt.Deploy), noting when each progress line arrives, then
// asks the router until it answers 200.
func timeDeploy(ctx context.Context, opt DeployOptions, dir string) (DeployPhases, error) {
	start := time.Now()
	lw := &lineTimes{start: start, at: map[string]float64{}}
	if err := opt.Deploy(ctx, dir, lw); err != nil {
		return DeployPhases{}, err
	}
	live := ms(time.Since(start))
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", opt.URL, nil)
		req.Host = opt.Host
		resp, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if ctx.Err() != nil || time.Since(start) > time.Minute {
			return DeployPhases{}, fmt.Errorf("no 200 through the router within a minute of the deploy")
		}
	}
	p := DeployPhases{Packed: lw.get("packed", "unchanged"), Unpacked: lw.get("uploaded", "unchanged"), Starting: lw.get("starting"),
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

func phasesMedian(ps []DeployPhases) DeployPhases {
	col := func(get func(DeployPhases) float64) float64 {
		var v []float64
		for _, p := range ps {
			v = append(v, get(p))
		}
		return median(v)
	}
	return DeployPhases{
		Packed: col(func(p DeployPhases) float64 { return p.Packed }), Unpacked: col(func(p DeployPhases) float64 { return p.Unpacked }),
		Starting: col(func(p DeployPhases) float64 { return p.Starting }), Healthy: col(func(p DeployPhases) float64 { return p.Healthy }),
		Live: col(func(p DeployPhases) float64 { return p.Live }), Routed: col(func(p DeployPhases) float64 { return p.Routed }),
	}
}

func printDeployFigures(w io.Writer, f DeployFigures) {
	fmt.Fprintf(w, "%s: ms from the command's start, median of %d runs each\n", f.App, len(f.Changed))
	fmt.Fprintf(w, "%-16s %8s %9s %9s %8s %7s %7s\n", "", "packed", "unpacked", "starting", "healthy", "live", "routed")
	for _, r := range []struct {
		name string
		p    DeployPhases
	}{{"a file changed", f.ChangedP50}, {"largest changed", f.RebuiltP50}, {"unchanged", f.UnchangedP50}} {
		fmt.Fprintf(w, "%-16s %8.0f %9.0f %9.0f %8.0f %7.0f %7.0f\n", r.name, r.p.Packed, r.p.Unpacked, r.p.Starting, r.p.Healthy, r.p.Live, r.p.Routed)
	}
}
