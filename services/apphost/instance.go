package apphost

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"enjin/supervisors/process"
)

// Instance states.
const (
	Starting  = "starting"
	Healthy   = "healthy"
	Unhealthy = "unhealthy"
	Crashed   = "crashed" // waiting out a restart backoff
	Stopped   = "stopped"
)

// Port is where every instance listens, inside its own network namespace.
const Port = 8080

// Restart policy (the watchdog): three immediate restarts, then a backoff from 30 s doubling
// to about 16 minutes, forgotten after 10 minutes of health.
var restartPolicy = struct {
	immediate    int
	first, limit time.Duration
	forgiveAfter time.Duration
}{3, 30 * time.Second, 16 * time.Minute, 10 * time.Minute}

// InstanceInfo is what ps shows of an instance.
type InstanceInfo struct {
	ID       string    `json:"id"`
	Node     string    `json:"node"`
	Type     string    `json:"type"`
	Release  int       `json:"release"`
	Address  string    `json:"address"`
	Port     int       `json:"port"`
	State    string    `json:"state"`
	Restarts int       `json:"restarts"`
	Started  time.Time `json:"started"`
	PID      int       `json:"pid"` // of the sandbox (its process group leader); 0 when not running
}

// instance runs one process of one release under the watchdog.
type instance struct {
	id, typ, command string
	release, index   int
	app              *app
	ep               *process.Endpoint
	cgroup           string
	procs            []string
	env              []string
	health           string // path; "" for non-web types

	mu       sync.Mutex
	cpuNs    uint64    // cgroup CPU time at the last report
	cpuAt    time.Time // when
	state    string
	restarts int
	started  time.Time
	pid      int
	cancel   context.CancelFunc
	done     chan struct{}
}

func (in *instance) info() InstanceInfo {
	in.mu.Lock()
	defer in.mu.Unlock()
	return InstanceInfo{ID: in.id, Node: string(in.app.host.cfg.Node), Type: in.typ, Release: in.release,
		Address: in.ep.Addr.String(), Port: Port, State: in.state, Restarts: in.restarts, Started: in.started, PID: in.pid}
}

func (in *instance) setState(s string) {
	in.mu.Lock()
	changed := in.state != s
	in.state = s
	in.mu.Unlock()
	if changed {
		in.app.host.routesChanged(in.app)
	}
}

func (in *instance) getState() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.state
}

// run keeps the instance running until ctx ends: start, wait, restart by the policy. It
// closes done when it has stopped the process for good.
func (in *instance) run(ctx context.Context) {
	defer close(in.done)
	crashes, delay := 0, restartPolicy.first
	for {
		began := time.Now()
		err := in.once(ctx)
		in.mu.Lock()
		in.pid = 0
		in.mu.Unlock()
		if ctx.Err() != nil {
			in.setState(Stopped)
			return
		}
		if time.Since(began) >= restartPolicy.forgiveAfter {
			crashes, delay = 0, restartPolicy.first
		}
		crashes++
		in.mu.Lock()
		in.restarts++
		in.mu.Unlock()
		wait := time.Duration(0)
		if crashes > restartPolicy.immediate {
			wait, delay = delay, min(2*delay, restartPolicy.limit)
		}
		in.app.host.log.Warn("instance exited", "instance", in.id, "err", err, "restart_in", wait)
		in.setState(Crashed)
		select {
		case <-ctx.Done():
			in.setState(Stopped)
			return
		case <-time.After(wait):
		}
	}
}

// once starts the process, checks its health while it runs and returns when it exits or
// ctx ends (after stopping it: SIGTERM, then SIGKILL after the grace).
func (in *instance) once(ctx context.Context) error {
	h := in.app.host
	// The app sees its release at /app (read-only) and its work directory as HOME.
	cmd, err := process.Sandbox{UID: in.app.uid, GID: in.app.uid, Netns: in.ep.Netns, CgroupProcs: in.procs,
		Root: h.sandboxRoot(), Binds: []process.Bind{{Source: in.app.releaseDir(in.release), Target: "/app"},
			{Source: in.app.workDir(), Target: "/home/app", Writable: true}},
		Dir: "/app", Path: "/bin/sh", Args: []string{"-c", "exec " + in.command}, Env: in.env}.Command(h.cfg.Helper)
	if err != nil {
		return err
	}
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	in.setState(Starting)
	err = cmd.Start()
	cmd.ExtraFiles[0].Close() // the sandbox's spec, which the helper has now
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.pid, in.started = cmd.Process.Pid, time.Now()
	in.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { in.lines(stdout, "stdout") }) // end when the process closes its output
	wg.Go(func() { in.lines(stderr, "stderr") })
	exited := make(chan error, 1)
	go func() { wg.Wait(); exited <- cmd.Wait() }() // ends when the process has exited
	hctx, stopHealth := context.WithCancel(ctx)
	defer stopHealth()
	if in.health != "" {
		go in.checkHealth(hctx) // ends with hctx
	} else {
		in.setState(Healthy)
	}
	select {
	case err := <-exited:
		return exitErr(err)
	case <-ctx.Done():
	}
	stopHealth()
	in.setState(Stopped)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-exited:
		return exitErr(err)
	case <-time.After(h.cfg.Grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return exitErr(<-exited)
	}
}

func exitErr(err error) error {
	if err == nil {
		return fmt.Errorf("exited")
	}
	return err
}

// checkHealth polls the instance's health path: healthy after one success, unhealthy (out
// of the router) after three failures in a row.
func (in *instance) checkHealth(ctx context.Context) {
	url := "http://" + netip.AddrPortFrom(in.ep.Addr, Port).String() + in.health
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	failures := 0
	t := time.NewTicker(in.app.host.cfg.HealthEvery)
	defer t.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := client.Do(req)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if err == nil && resp.StatusCode < 400 {
			failures = 0
			in.setState(Healthy)
		} else if failures++; failures >= 3 && in.getState() == Healthy {
			in.setState(Unhealthy)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lines forwards each line the process writes to the app's log.
func (in *instance) lines(r io.Reader, stream string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		in.app.host.logLine(in.app, LogLine{Time: time.Now(), Instance: in.id, Stream: stream, Line: sc.Text()})
	}
	io.Copy(io.Discard, r) // a line too long ends the scan; keep the pipe drained
}

// stop ends the instance and waits for it, then frees its cgroup and network.
func (in *instance) stop() {
	in.cancel()
	<-in.done
	h := in.app.host
	if err := h.cfg.Cgroups.Remove(in.cgroup); err != nil {
		h.log.Warn("cgroup not removed", "instance", in.id, "err", err)
	}
	if err := in.ep.Close(); err != nil {
		h.log.Warn("network not removed", "instance", in.id, "err", err)
	}
	h.logs.mu.Lock()
	fn := h.stopped
	h.logs.mu.Unlock()
	if fn != nil {
		fn(in.app.tenant, in.app.name, in.id)
	}
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// cpuShare turns the cgroup's total CPU time into the fraction of a core used since the
// previous call.
func (in *instance) cpuShare(totalNs uint64) float64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Now()
	var share float64
	if !in.cpuAt.IsZero() && totalNs >= in.cpuNs {
		share = float64(totalNs-in.cpuNs) / float64(now.Sub(in.cpuAt).Nanoseconds())
	}
	in.cpuNs, in.cpuAt = totalNs, now
	return share
}
