package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// serve answers probes over HTTP on $PORT until killed.
func serve() int {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	// Which app and release answered, so a test can tell its own app from another's; also
	// at /, the default health check.
	whoami := func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s/%s release %s uid %d\n", os.Getenv("ENJIN_TENANT"), os.Getenv("ENJIN_APP"), os.Getenv("ENJIN_RELEASE"), os.Getuid())
	}
	mux.HandleFunc("GET /whoami", whoami)
	mux.HandleFunc("GET /{$}", whoami)
	mux.HandleFunc("GET /probe", func(w http.ResponseWriter, r *http.Request) {
		res := runProbe(r.FormValue("name"), r.FormValue("arg"))
		if _, ok := probes[res.Probe]; !ok {
			w.WriteHeader(http.StatusNotFound)
		}
		json.NewEncoder(w).Encode(res)
	})
	mux.HandleFunc("POST /sh", shell)
	// This instance's own GET of url (2 s at most, on a new connection): the answer's status and body, or 502
	// with why there was none — what the instance can reach, seen from inside.
	mux.HandleFunc("GET /fetch", func(w http.ResponseWriter, r *http.Request) {
		// A connection of its own each time: what is reachable now, not what was.
		c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(r.FormValue("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, io.LimitReader(resp.Body, maxOutput))
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, "probe: serving on", srv.Addr)
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
	}
	return 1
}

// maxOutput bounds what /sh returns (and reads).
const maxOutput = 64 << 10

// shell runs the request body with sh -c for at most 10 s, answering with its output (at
// most 64 KiB, stdout and stderr together) and its exit code in X-Exit-Code.
func shell(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxOutput))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", string(body))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) } // the whole group
	cmd.WaitDelay = time.Second                                                          // for pipes a straggler holds
	out := &capped{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
	}
	w.Header().Set("X-Exit-Code", strconv.Itoa(code))
	w.Write(out.buf.Bytes())
}

// capped keeps the first max bytes written to it and drops the rest.
type capped struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
