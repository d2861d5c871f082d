package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// routerHost is the Host wrk sends to both proxies.
const routerHost = "app.tenant.apps.test"

// routerBody is what the benchmark's backend answers: about 100 bytes.
var routerBody = bytes.Repeat([]byte("enjin router bench 0123456789\n"), 4)[:100]

// ProxyRun is one wrk run against one proxy.
type ProxyRun struct {
	Proxy  string  `json:"proxy"`
	RPS    float64 `json:"requests_per_sec"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	Errors int64   `json:"errors"` // socket errors and non-2xx answers
}

// RouterFigures are Router's results: every run, then medians over the rounds.
type RouterFigures struct {
	Settings    string     `json:"settings"`
	Runs        []ProxyRun `json:"runs"`
	RouterRPS   float64    `json:"router_rps"`
	NginxRPS    float64    `json:"nginx_rps"`
	RouterP99Ms float64    `json:"router_p99_ms"`
	NginxP99Ms  float64    `json:"nginx_p99_ms"`
	RPSRatio    float64    `json:"rps_ratio"`
	P99Ratio    float64    `json:"p99_ratio"`
	// The third contender: Go's httputil.ReverseProxy in this process, on the same backend,
	// for what the hand-written HTTP/1.1 path earns over the standard library's.
	GoProxyRPS   float64 `json:"goproxy_rps"`
	GoProxyP99Ms float64 `json:"goproxy_p99_ms"`
	GoRPSRatio   float64 `json:"goproxy_rps_ratio"` // router/goproxy
	GoP99Ratio   float64 `json:"goproxy_p99_ratio"`
	LoadBefore   string  `json:"load_before"` // 1, 5 and 15 minute load averages
	LoadAfter    string  `json:"load_after"`
}

// RouterOptions are the options of Router.
type RouterOptions struct {
	Duration     time.Duration // how long wrk loads each proxy per round, at least 1 s
	Connections  int           // wrk's
	Threads      int           // wrk's
	Rounds       int           // each loading the router, nginx, then Go's ReverseProxy
	NginxWorkers string        // nginx's worker_processes ("auto": one per core)
	AccessLog    bool          // both proxies log every request to a buffered file
	// BackendInProcess runs the backend in this process, sharing the router's Go runtime.
	// Otherwise Backend is the command that serves it (ServeBackend) at the address that
	// Router appends to it: `enjin bench router --serve-backend`.
	BackendInProcess bool
	Backend          []string
	Output           string    // "text" or "json"
	Progress         io.Writer // progress lines and the backend's stderr; nil: none
}

// Router loads the app router, nginx (a reverse proxy with upstream keepalive) and Go's
// httputil.ReverseProxy with wrk in turn, Rounds times, all in front of the same backend,
// and prints every run, each proxy's medians and the medians of each round's ratios. It needs
// wrk and nginx.
func Router(ctx context.Context, opt RouterOptions, stdout io.Writer) error {
	if !opt.BackendInProcess && len(opt.Backend) == 0 {
		return errors.New("bench router: no command to serve the backend (Backend), and not BackendInProcess")
	}
	if opt.Duration < time.Second || opt.Connections < 1 || opt.Threads < 1 || opt.Rounds < 1 || (opt.Output != "text" && opt.Output != "json") {
		return usagef("bench router: --duration must be at least 1s, --connections, --threads and --rounds positive; -o text or json")
	}
	for _, tool := range []string{"wrk", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("bench router: %s not found; install wrk and nginx with: apt-get install -y wrk nginx", tool)
		}
	}
	progress := progressTo(opt.Progress, "bench router: ")
	dir, err := os.MkdirTemp("", "enjin-bench-router-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // nginx workers run as nobody

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	backend, err := startBenchBackend(ctx, opt)
	if err != nil {
		return err
	}
	routerAddr, stopRouter, err := startBenchRouter(ctx, backend, dir, opt.AccessLog)
	if err != nil {
		return err
	}
	defer stopRouter()
	nginxAddr, stopNginx, err := startNginx(ctx, dir, backend, opt.NginxWorkers, opt.AccessLog)
	if err != nil {
		return err
	}
	defer stopNginx()
	goAddr, err := startGoProxy(ctx, backend)
	if err != nil {
		return err
	}
	for _, a := range []string{routerAddr, nginxAddr, goAddr} {
		if err := checkProxy(ctx, a); err != nil {
			return err
		}
	}
	loadBefore := loadAvg()
	f := RouterFigures{Settings: fmt.Sprintf("wrk -t%d -c%d -d%v --latency; nginx worker_processes %s, upstream keepalive 64, "+
		"access log %s in both; router GOMAXPROCS %d; backend %s; no CPU pinning; %d cores shared by wrk, proxy and backend",
		opt.Threads, opt.Connections, opt.Duration, opt.NginxWorkers, onOff(opt.AccessLog), runtime.GOMAXPROCS(0), backendWhere(opt.BackendInProcess), runtime.NumCPU())}
	for round := 1; round <= opt.Rounds; round++ {
		for _, p := range []struct{ name, addr string }{{"router", routerAddr}, {"nginx", nginxAddr}, {"goproxy", goAddr}} {
			progress("round %d/%d: wrk against %s (%s) for %v", round, opt.Rounds, p.name, p.addr, opt.Duration)
			run, err := runWrk(ctx, p.addr, opt.Threads, opt.Connections, opt.Duration)
			if err != nil {
				return fmt.Errorf("bench router: wrk against %s: %w", p.name, err)
			}
			run.Proxy = p.name
			f.Runs = append(f.Runs, run)
		}
	}
	f.LoadBefore, f.LoadAfter = loadBefore, loadAvg()
	f.summarize()
	if opt.Output == "json" {
		return json.NewEncoder(stdout).Encode(f)
	}
	fmt.Fprintf(stdout, "settings   %s\n", f.Settings)
	for i, r := range f.Runs {
		fmt.Fprintf(stdout, "round %d    %-7s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d\n", i/3+1, r.Proxy, r.RPS, r.P50Ms, r.P99Ms, r.Errors)
	}
	fmt.Fprintf(stdout, "median     router  %9.0f req/s  p99 %6.2f ms\n", f.RouterRPS, f.RouterP99Ms)
	fmt.Fprintf(stdout, "median     nginx   %9.0f req/s  p99 %6.2f ms\n", f.NginxRPS, f.NginxP99Ms)
	fmt.Fprintf(stdout, "median     goproxy %9.0f req/s  p99 %6.2f ms\n", f.GoProxyRPS, f.GoProxyP99Ms)
	fmt.Fprintf(stdout, "ratio      router/nginx    req/s %.2f  p99 %.2f  (median of the rounds' ratios)\n", f.RPSRatio, f.P99Ratio)
	fmt.Fprintf(stdout, "ratio      router/goproxy  req/s %.2f  p99 %.2f\n", f.GoRPSRatio, f.GoP99Ratio)
	fmt.Fprintf(stdout, "load avg   %s before, %s after (other work on the machine skews both proxies)\n", f.LoadBefore, f.LoadAfter)
	return nil
}

// loadAvg returns the 1, 5 and 15 minute load averages, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func onOff(b bool) string {
	if b {
		return "on (buffered)"
	}
	return "off"
}

// summarize takes the median of each proxy's figures, and as ratios the medians of each
// round's ratios: two runs next to each other see the same machine, which on a shared host
// matters more than anything the proxies do.
func (f *RouterFigures) summarize() {
	var rps, p99 [3][]float64
	var rpsRatio, p99Ratio, goRPS, goP99 []float64
	for i, r := range f.Runs {
		k := i % 3 // router, nginx, goproxy
		rps[k], p99[k] = append(rps[k], r.RPS), append(p99[k], r.P99Ms)
		switch k {
		case 1:
			rpsRatio = append(rpsRatio, f.Runs[i-1].RPS/r.RPS)
			p99Ratio = append(p99Ratio, f.Runs[i-1].P99Ms/r.P99Ms)
		case 2:
			goRPS = append(goRPS, f.Runs[i-2].RPS/r.RPS)
			goP99 = append(goP99, f.Runs[i-2].P99Ms/r.P99Ms)
		}
	}
	f.RouterRPS, f.NginxRPS, f.GoProxyRPS = median(rps[0]), median(rps[1]), median(rps[2])
	f.RouterP99Ms, f.NginxP99Ms, f.GoProxyP99Ms = median(p99[0]), median(p99[1]), median(p99[2])
	f.RPSRatio, f.P99Ratio = median(rpsRatio), median(p99Ratio)
	f.GoRPSRatio, f.GoP99Ratio = median(goRPS), median(goP99)
}

func backendWhere(inproc bool) string {
	if inproc {
		return "Go net/http in the router's process"
	}
	return "Go net/http in a child process"
}
