package bench

import (
	"bytes"
	"context"
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
	"strconv"
	"syscall"
	"time"

	"enjin/services/router"
)

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

// startBenchBackend serves routerBody on a loopback port until ctx ends: in this process if
// opt.BackendInProcess, else in a child process (opt.Backend and the address: ServeBackend),
// so that the router does not share its Go runtime with the backend, as nginx does not.
func startBenchBackend(ctx context.Context, opt RouterOptions) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	if opt.BackendInProcess {
		srv := &http.Server{Handler: http.HandlerFunc(benchHandler)}
		go srv.Serve(ln)                               // ends when srv is closed
		context.AfterFunc(ctx, func() { srv.Close() }) // runs when the benchmark ends
		return ln.Addr().String(), nil
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.CommandContext(ctx, opt.Backend[0], append(opt.Backend[1:len(opt.Backend):len(opt.Backend)], addr)...)
	cmd.Stderr = opt.Progress
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

// ServeBackend is the router benchmark's backend in a child process of its own (see
// RouterOptions.Backend): it serves on addr, says "ok" on stdout, and serves until stdin
// closes.
func ServeBackend(addr string, stdin io.Reader, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(benchHandler)}
	go srv.Serve(ln) // ends when srv is closed
	fmt.Fprintln(stdout, "ok")
	io.Copy(io.Discard, stdin)
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
func runWrk(ctx context.Context, addr string, threads, conns int, dur time.Duration) (ProxyRun, error) {
	cmd := exec.CommandContext(ctx, "wrk", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conns),
		"-d"+strconv.Itoa(int(dur.Seconds()))+"s", "--latency", "-H", "Host: "+routerHost, "http://"+addr+"/")
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return ProxyRun{}, fmt.Errorf("%w: %s", err, outb)
	}
	return parseWrk(string(outb))
}

func parseWrk(out string) (ProxyRun, error) {
	var r ProxyRun
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
