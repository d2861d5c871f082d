package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"enjin/services/router"
)

// routerHost is the Host wrk sends to both proxies.
const routerHost = "app.tenant.apps.test"

// routerBody is what the benchmark's backend answers: about 100 bytes.
var routerBody = bytes.Repeat([]byte("enjin router bench 0123456789\n"), 4)[:100]

type proxyRun struct {
	Proxy  string  `json:"proxy"`
	RPS    float64 `json:"requests_per_sec"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	Errors int64   `json:"errors"` // socket errors and non-2xx answers
}

// routerFigures are the benchmark's results: every run, then medians over the rounds.
type routerFigures struct {
	Settings    string     `json:"settings"`
	Runs        []proxyRun `json:"runs"`
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

// routerFlags are the flags of `enjin bench router`.
type routerFlags struct {
	dur                        time.Duration
	conns, threads, rounds     int
	workers, serveBackend, out string
	accessLog, inproc          bool
}

func benchRouterCmd() *cobra.Command {
	var f routerFlags
	c := &cobra.Command{
		Use:   "router",
		Short: "wrk against the app router, nginx (reverse proxy, upstream keepalive) and Go's httputil.ReverseProxy, same backend, same run",
		Args:  argsBetween(0, 0, "no arguments"),
		RunE:  func(c *cobra.Command, _ []string) error { return benchRouter(c.Context(), f, c.OutOrStdout()) },
	}
	fs := c.Flags()
	fs.DurationVar(&f.dur, "duration", 10*time.Second, "how long wrk loads each proxy per round")
	fs.IntVar(&f.conns, "connections", 64, "wrk connections")
	fs.IntVar(&f.threads, "threads", 2, "wrk threads")
	fs.IntVar(&f.rounds, "rounds", 3, "rounds, each loading the router, nginx, then Go's ReverseProxy")
	fs.StringVar(&f.workers, "nginx-workers", "auto", "nginx worker_processes (auto: one per core, as the router uses every core)")
	fs.BoolVar(&f.accessLog, "access-log", false, "both proxies log every request to a buffered file in the temp dir")
	fs.BoolVar(&f.inproc, "backend-in-process", false, "run the backend in this process (sharing the router's Go runtime) instead of a child process")
	fs.StringVar(&f.serveBackend, "serve-backend", "", "internal: serve the backend on this address until stdin closes")
	fs.MarkHidden("serve-backend")
	fs.StringVarP(&f.out, "output", "o", "text", "output format: text or json")
	return c
}

func benchRouter(ctx context.Context, opt routerFlags, stdout io.Writer) error {
	dur, conns, threads, rounds, workers := &opt.dur, &opt.conns, &opt.threads, &opt.rounds, &opt.workers
	accessLog, inproc, serveBackend, out := &opt.accessLog, &opt.inproc, &opt.serveBackend, &opt.out
	if *serveBackend != "" {
		return serveBenchBackend(*serveBackend, stdout)
	}
	if *dur < time.Second || *conns < 1 || *threads < 1 || *rounds < 1 || (*out != "text" && *out != "json") {
		return usagef("bench router: --duration must be at least 1s, --connections, --threads and --rounds positive; -o text or json")
	}
	for _, tool := range []string{"wrk", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("bench router: %s not found; install wrk and nginx with: apt-get install -y wrk nginx", tool)
		}
	}
	progress := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench router: "+f+"\n", a...) }
	if addr := os.Getenv("ENJIN_PPROF"); addr != "" { // profile the router (and the Go proxy) as they run
		startPprof(addr, slog.Default())
	}
	dir, err := os.MkdirTemp("", "enjin-bench-router-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // nginx workers run as nobody

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	backend, err := startBenchBackend(ctx, *inproc)
	if err != nil {
		return err
	}
	routerAddr, stopRouter, err := startBenchRouter(ctx, backend, dir, *accessLog)
	if err != nil {
		return err
	}
	defer stopRouter()
	nginxAddr, stopNginx, err := startNginx(ctx, dir, backend, *workers, *accessLog)
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
	f := routerFigures{Settings: fmt.Sprintf("wrk -t%d -c%d -d%v --latency; nginx worker_processes %s, upstream keepalive 64, "+
		"access log %s in both; router GOMAXPROCS %d; backend %s; no CPU pinning; %d cores shared by wrk, proxy and backend",
		*threads, *conns, *dur, *workers, onOff(*accessLog), runtime.GOMAXPROCS(0), backendWhere(*inproc), runtime.NumCPU())}
	for round := 1; round <= *rounds; round++ {
		for _, p := range []struct{ name, addr string }{{"router", routerAddr}, {"nginx", nginxAddr}, {"goproxy", goAddr}} {
			progress("round %d/%d: wrk against %s (%s) for %v", round, *rounds, p.name, p.addr, *dur)
			run, err := runWrk(ctx, p.addr, *threads, *conns, *dur)
			if err != nil {
				return fmt.Errorf("bench router: wrk against %s: %w", p.name, err)
			}
			run.Proxy = p.name
			f.Runs = append(f.Runs, run)
		}
	}
	f.LoadBefore, f.LoadAfter = loadBefore, loadAvg()
	f.summarize()
	if *out == "json" {
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
func (f *routerFigures) summarize() {
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

// startGoProxy serves Go's httputil.ReverseProxy to backend on a loopback port until ctx
// ends, its transport keeping as many idle connections as wrk opens.
func startGoProxy(ctx context.Context, backend string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: backend})
	rp.Transport = &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	rp.ErrorLog = log.New(io.Discard, "", 0) // wrk leaving at a round's end cancels requests: not news
	srv := &http.Server{Handler: rp}
	go srv.Serve(ln)                               // ends when srv is closed
	context.AfterFunc(ctx, func() { srv.Close() }) // runs when the benchmark ends
	return ln.Addr().String(), nil
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func backendWhere(inproc bool) string {
	if inproc {
		return "Go net/http in the router's process"
	}
	return "Go net/http in a child process"
}

// startBenchBackend serves routerBody on a loopback port until ctx ends: in this process if
// inproc, else in a child process (this program run with --serve-backend), so that the router
// does not share its Go runtime with the backend, as nginx does not.
func startBenchBackend(ctx context.Context, inproc bool) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	if inproc {
		srv := &http.Server{Handler: http.HandlerFunc(benchHandler)}
		go srv.Serve(ln)                               // ends when srv is closed
		context.AfterFunc(ctx, func() { srv.Close() }) // runs when the benchmark ends
		return ln.Addr().String(), nil
	}
	addr := ln.Addr().String()
	ln.Close()
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, exe, backendArgs(addr)...)
	cmd.Stderr = os.Stderr
	// The child exits when its stdin closes, and is killed if we die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	stdoutPipe, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("bench router: start backend: %w", err)
	}
	go func() { <-ctx.Done(); stdin.Close(); cmd.Wait() }() // ends with the benchmark
	line := make([]byte, 3)
	if _, err := io.ReadFull(stdoutPipe, line); err != nil || string(line) != "ok\n" {
		return "", fmt.Errorf("bench router: backend did not start: %q %v", line, err)
	}
	return addr, nil
}

// backendArgs are the arguments that make this program serve the backend on addr.
func backendArgs(addr string) []string {
	return []string{"bench", "router", "--serve-backend", addr}
}

// serveBenchBackend is the backend child: it serves on addr until stdin closes.
func serveBenchBackend(addr string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(benchHandler)}
	go srv.Serve(ln) // ends when srv is closed
	fmt.Fprintln(stdout, "ok")
	io.Copy(io.Discard, os.Stdin)
	return srv.Close()
}

func benchHandler(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain"}
	h["Content-Length"] = []string{strconv.Itoa(len(routerBody))}
	w.Write(routerBody)
}

func startBenchRouter(ctx context.Context, backend, dir string, accessLog bool) (string, func(), error) {
	cfg := router.Config{AppsDomain: "apps.test"}
	var logBuf *router.LogBuffer
	if accessLog {
		f, err := os.Create(filepath.Join(dir, "router-access.log"))
		if err != nil {
			return "", nil, err
		}
		logBuf = router.NewLogBuffer(f, 0)
		cfg.Logger = slog.New(slog.NewTextHandler(logBuf, nil))
	}
	rt, err := router.New(cfg)
	if err != nil {
		return "", nil, err
	}
	rt.SetRoute("tenant", "app", []router.Backend{{ID: "bench-0", Addr: backend}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, ln) }() // ends when stop cancels ctx
	stop := func() {
		cancel()
		<-done
		if logBuf != nil {
			logBuf.Close()
		}
	}
	return ln.Addr().String(), stop, nil
}

const nginxConf = `worker_processes %s;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 4096; }
http {
	%[5]s
	keepalive_requests 1000000;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	upstream b {
		server %[3]s;
		keepalive 64;
		keepalive_requests 1000000;
	}
	server {
		listen %[4]s;
		location / {
			proxy_pass http://b;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto $scheme;
			proxy_set_header X-Forwarded-Host $host;
			proxy_set_header X-Real-IP $remote_addr;
			proxy_set_header Forwarded "for=$remote_addr;proto=$scheme;host=\"$host\"";
			proxy_set_header Enjin-Hop 1;
		}
	}
}
`

// startNginx runs nginx in the foreground as a reverse proxy to backend with upstream
// keepalive, and returns its address and a function that stops it.
func startNginx(ctx context.Context, dir, backend, workers string, accessLog bool) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // find a free port for nginx
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logLine := "access_log off;"
	if accessLog {
		logLine = "access_log " + dir + "/nginx-access.log combined buffer=64k flush=200ms;"
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, workers, dir, backend, addr, logLine), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.Command("nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf, "-g", "daemon off;")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // the master stops its workers
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("bench router: start nginx: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // ends when nginx exits
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, stop, nil
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return "", nil, fmt.Errorf("bench router: nginx exited (%v): %s%s", err, stderr.String(), log)
		case <-ctx.Done():
			stop()
			return "", nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, errors.New("bench router: nginx did not listen within 10 s")
		}
	}
}

// checkProxy makes sure addr proxies routerHost to the backend before it is measured.
func checkProxy(ctx context.Context, addr string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	req.Host = routerHost
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("bench router: check %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, routerBody) {
		return fmt.Errorf("bench router: check %s: got %d %q (%v) want 200 and the backend's body", addr, resp.StatusCode, body, err)
	}
	return nil
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkSocket  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// runWrk loads addr with wrk and parses its figures.
func runWrk(ctx context.Context, addr string, threads, conns int, dur time.Duration) (proxyRun, error) {
	cmd := exec.CommandContext(ctx, "wrk", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conns),
		"-d"+strconv.Itoa(int(dur.Seconds()))+"s", "--latency", "-H", "Host: "+routerHost, "http://"+addr+"/")
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return proxyRun{}, fmt.Errorf("%w: %s", err, outb)
	}
	return parseWrk(string(outb))
}

func parseWrk(out string) (proxyRun, error) {
	var r proxyRun
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk's output: %s", out)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range wrkLatency.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if m[1] == "50" {
			r.P50Ms = v
		} else {
			r.P99Ms = v
		}
	}
	if r.P99Ms == 0 {
		return r, fmt.Errorf("no 99%% latency in wrk's output: %s", out)
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.Errors += n
	}
	return r, nil
}
