package apphost

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"enjin/supervisors/sandbox"
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

// Restart policy (the watchdog): an instance that ends after it was healthy for a while (a
// working instance killed, not one failing to start) is started again at once; one that
// keeps ending before that gets three immediate restarts, then a backoff from 30 s doubling
// to about 16 minutes, forgotten after 10 minutes of running.
var restartPolicy = struct {
	immediate    int
	first, limit time.Duration
	forgiveAfter time.Duration
	stable       time.Duration // healthy this long, its end is no crash loop's
}{3, 30 * time.Second, 16 * time.Minute, 10 * time.Minute, 500 * time.Millisecond}

// instance runs one process of one release under the watchdog.
type instance struct {
	id, name, typ string
	release       int
	index         int
	serial        string // allocated: names its cgroup, network namespace and veth pair
	cfg           InstanceConfig
	app           *app
	ep            *sandbox.Endpoint
	system        bool         // the system tenant's: its address may reach the relay to ring 0
	nets          []Attachment // under mu
	cgroup        string
	procs         []string

	mu       sync.Mutex
	cpuNs    uint64    // cgroup CPU time at the last report
	cpuAt    time.Time // when
	state    string
	healthy  time.Time // since when it has been healthy; zero when it is not
	restarts int
	started  time.Time
	pid      int
	exit     string   // how the process last ended
	tail     []string // its last lines of output, for the reason of a failed deploy
	cancel   context.CancelFunc
	done     chan struct{}
	sink     func(LogLine) // a job's: who waits for its output (set before it runs)
}

// tailLines is how many of an instance's last lines it keeps for a failure's reason.
const tailLines = 20

func (in *instance) info() InstanceInfo {
	in.mu.Lock()
	defer in.mu.Unlock()
	return InstanceInfo{ID: in.id, Name: in.name, Node: string(in.app.host.cfg.Node), Type: in.typ, Release: in.release,
		Address: in.ep.Addr.String(), Port: Port, State: in.state, Restarts: in.restarts, Started: in.started, PID: in.pid, Exit: in.exit,
		Networks: append([]Attachment(nil), in.nets...)}
}

func (in *instance) setState(s string) {
	in.mu.Lock()
	changed := in.state != s
	in.state = s
	if changed && s == Healthy {
		in.healthy = time.Now()
	} else if s != Healthy {
		in.healthy = time.Time{}
	}
	in.mu.Unlock()
	if changed {
		in.app.host.routesChanged(in.app)
		in.app.mu.Lock()
		in.app.notify()
		in.app.mu.Unlock()
	}
}

func (in *instance) getState() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.state
}

// reason says why the instance is failing: how it last ended and what it said last.
func (in *instance) reason() *Reason {
	in.mu.Lock()
	defer in.mu.Unlock()
	return &Reason{Instance: in.name, Exit: in.exit, Logs: append([]string(nil), in.tail...)}
}

// run keeps the instance running until ctx ends: start, wait, restart by the policy. It
// closes done when it has stopped the process for good. A panic here (a bug meeting what a
// tenant's process did) ends only this instance, marked crashed.
func (in *instance) run(ctx context.Context) {
	defer close(in.done)
	defer in.app.host.recovered("instance", in, func() { in.setState(Crashed) })
	crashes, delay := 0, restartPolicy.first
	for {
		began := time.Now()
		err := in.once(ctx)
		in.mu.Lock()
		in.pid = 0
		in.exit = in.describeExit(err)
		stable := !in.healthy.IsZero() && time.Since(in.healthy) >= restartPolicy.stable
		in.mu.Unlock()
		if ctx.Err() != nil {
			in.setState(Stopped)
			return
		}
		if stable || time.Since(began) >= restartPolicy.forgiveAfter {
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
		in.app.host.log.Warn("instance exited", "tenant", in.app.tenant, "app", in.app.name, "instance", in.name, "exit", in.exit, "restart_in", wait)
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
// ctx ends (after stopping it: SIGTERM to its init, which passes it on, then the cgroup is
// killed after the grace).
func (in *instance) once(ctx context.Context) error {
	h := in.app.host
	lim := in.cfg.Limits
	binds := []sandbox.Bind{{Source: in.app.releaseDir(in.release), Target: "/app"},
		{Source: in.app.homeDir(), Target: "/home/app", Writable: true}}
	if in.system {
		binds = append(binds, sandbox.Bind{Source: h.cfg.Helper, Target: SystemBinary})
	}
	cmd, err := sandbox.Spec{UID: in.app.uid, GID: in.app.uid, Hostname: in.app.name, Netns: in.ep.Netns,
		CgroupProcs: in.procs, Root: h.sandboxRoot(), Binds: binds,
		TmpBytes: int64(lim.TmpMB) << 20, Dir: "/app", Path: "/bin/sh", Args: []string{"-c", in.cfg.Command},
		Env: in.cfg.Env}.Command(h.cfg.Helper)
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
	if in.cfg.Health != "" {
		go in.checkHealth(hctx) // ends with hctx
	} else {
		in.setState(Healthy)
	}
	select {
	case err := <-exited:
		h.cfg.Cgroups.Kill(in.cgroup) // whatever escaped its namespace's end (nothing should)
		return err
	case <-ctx.Done():
	}
	stopHealth()
	in.setState(Stopped)
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-exited:
		return err
	case <-time.After(h.cfg.Grace):
		if kerr := h.cfg.Cgroups.Kill(in.cgroup); kerr != nil {
			h.log.Error("instance not killed", "instance", in.name, "err", kerr)
		}
		return <-exited
	}
}

// describeExit says how the process ended, in words for people: the sandbox's init exits
// with the app's status, or 128 plus the signal that killed it.
func (in *instance) describeExit(err error) string {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if err == nil {
			return "exit status 0"
		}
		return err.Error()
	}
	code := ee.ExitCode()
	switch {
	case code == 111:
		return "the sandbox could not start it (exit status 111; see its last lines)"
	case code > 128 && code < 128+65:
		sig := syscall.Signal(code - 128)
		if sig == syscall.SIGKILL && in.app.host.cfg.Cgroups.OOMKills(in.cgroup) > 0 {
			return fmt.Sprintf("killed: out of memory (limit %d MiB)", in.cfg.Limits.MemoryMB)
		}
		return fmt.Sprintf("killed by signal %d (%v)", int(sig), sig)
	case code >= 0:
		return "exit status " + strconv.Itoa(code)
	}
	return ee.Error()
}

// startingPoll is how often a starting instance's health is asked: a refused connection costs
// next to nothing, and every poll saved is time a restarted instance is out of the router.
const startingPoll = 10 * time.Millisecond

// checkHealth polls the instance's health path: healthy after one success, unhealthy (out
// of the router) after three failures in a row. It polls fast while the instance starts.
func (in *instance) checkHealth(ctx context.Context) {
	defer in.app.host.recovered("health check", in, func() { in.setState(Unhealthy) })
	url := "http://" + netip.AddrPortFrom(in.ep.Addr, Port).String() + in.cfg.Health
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	failures := 0
	every := in.app.host.cfg.HealthEvery
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil { // a health path that slipped past the checks: the instance is unhealthy
			in.setState(Unhealthy)
			return
		}
		resp, err := client.Do(req)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		state := in.getState()
		if err == nil && resp.StatusCode < 400 {
			failures = 0
			in.setState(Healthy)
		} else if failures++; failures >= 3 && state == Healthy {
			in.setState(Unhealthy)
		}
		next := every
		if in.getState() == Starting {
			next = min(every, startingPoll) // a starting instance is waited for
		}
		t.Reset(next)
	}
}

// lines forwards each line the process writes to the app's log and keeps the last few. A
// line longer than maxLine is cut there (the rest of it is dropped) and logging goes on.
func (in *instance) lines(r io.Reader, stream string) {
	defer in.app.host.recovered("log reader", in, func() { io.Copy(io.Discard, r) })
	br := bufio.NewReaderSize(r, maxLine)
	for {
		b, err := br.ReadSlice('\n')
		line, long := string(bytes.TrimRight(b, "\n")), errors.Is(err, bufio.ErrBufferFull)
		for long { // skip the rest of an overlong line
			_, err = br.ReadSlice('\n')
			long = errors.Is(err, bufio.ErrBufferFull)
		}
		if len(b) > 0 {
			in.logLine(stream, line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// maxLine is the longest log line kept whole.
const maxLine = 64 << 10

func (in *instance) logLine(stream, line string) {
	l := LogLine{Time: time.Now(), Instance: in.id, Process: in.name, Release: in.release, Stream: stream, Line: line}
	in.mu.Lock()
	if len(in.tail) == tailLines {
		in.tail = append(in.tail[:0], in.tail[1:]...)
	}
	in.tail = append(in.tail, l.Line)
	in.mu.Unlock()
	in.app.host.logLine(in.app, l)
	if in.sink != nil {
		in.sink(l)
	}
}

// stop ends the instance and waits for it, then frees its cgroup and network.
func (in *instance) stop() {
	in.cancel()
	<-in.done
	in.teardown()
}

// teardown takes away what prepare made for the instance, once its process is gone.
func (in *instance) teardown() {
	h := in.app.host
	if err := h.cfg.Cgroups.Kill(in.cgroup); err != nil {
		h.log.Warn("cgroup not emptied", "instance", in.name, "err", err)
	}
	if err := h.cfg.Cgroups.Remove(in.cgroup); err != nil {
		h.log.Warn("cgroup not removed", "instance", in.name, "err", err)
	}
	in.leaveNetworks()
	if in.system {
		if err := h.cfg.System.Disallow(in.ep.Addr); err != nil {
			h.log.Warn("relay to ring 0 not closed", "instance", in.name, "err", err)
		}
	}
	if err := in.ep.Close(); err != nil {
		h.log.Warn("network not removed", "instance", in.name, "err", err)
	}
	h.logs.mu.Lock()
	fn := h.stopped
	h.logs.mu.Unlock()
	if fn != nil {
		fn(in.app.tenant, in.app.name, in.id)
	}
}

// cpuSince is the fraction of one core used since the last cpuShare, which it leaves be.
func (in *instance) cpuSince(totalNs uint64) float64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cpuAt.IsZero() || totalNs < in.cpuNs {
		return 0
	}
	return float64(totalNs-in.cpuNs) / float64(max(time.Since(in.cpuAt).Nanoseconds(), 1))
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
