package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin/bus/broker"
	"enjin/keys"
	"enjin/services/postgres"
)

// ingestPhase runs one measurement of `bench ingest`: members ring 0 processes (a cluster
// when more than one) on a store at url, the simulated fleet spread over their brokers.
func ingestPhase(ctx context.Context, opt IngestOptions, dir, url string, members int, signers []*simSigner, progress func(string, ...any)) (IngestFigures, error) {
	state0 := filepath.Join(dir, "r0-0")
	chain, err := broker.Init(state0)
	if err != nil {
		return IngestFigures{}, err
	}
	progress("registering %d nodes with attestation keys", len(signers))
	if err := registerFleet(ctx, url, signers); err != nil {
		return IngestFigures{}, err
	}
	r0s, natsURLs, err := startMembers(ctx, opt, dir, url, members)
	defer func() {
		for _, r := range r0s {
			r.stop()
		}
	}()
	if err != nil {
		return IngestFigures{}, err
	}
	total := int(opt.Rate * opt.Duration.Seconds())
	progress("signing %d heartbeats ahead (%d ring 0 members, nats %s)", total, members, strings.Join(natsURLs, " "))
	signTime := time.Duration(float64(total)*40e3/float64(runtime.GOMAXPROCS(0))) + 2*time.Second
	t0 := time.Now().Add(signTime)
	msgs := presign(signers, total, opt.Rate, t0)
	progress("offering %.0f/s for %v", opt.Rate, opt.Duration)
	var takeovers []time.Duration
	var down int64
	var aside sync.WaitGroup
	aside.Go(func() { down = downAt(ctx, url, t0.Add(opt.Duration)) })
	if members > 1 && opt.LeaderKills > 0 {
		aside.Go(func() { takeovers = killLeaders(ctx, url, r0s, opt.LeaderKills, t0, opt.Duration, progress) })
	}
	res, err := offer(ctx, chain, natsURLs, msgs, signers, opt.Rate, t0, opt.Conns, progress)
	aside.Wait()
	if err != nil {
		return IngestFigures{}, err
	}
	f := IngestFigures{Nodes: len(signers), Members: members, OfferedRate: opt.Rate, Sent: total, Acked: res.acked, Refused: res.refused,
		Deferred: res.deferred, Timeouts: res.timeouts, Resigned: res.resigned, NoResponders: res.statuses, Reasons: res.reasons, Ring0MemMB: opt.Ring0MemoryMB, DurableDB: !opt.FastDB && opt.DatabaseURL == ""}
	f.CommittedRate = float64(res.acked) / res.span.Seconds()
	f.WindowRate, f.DeferredRate = float64(res.ackedInWindow)/opt.Duration.Seconds(), float64(res.deferred)/opt.Duration.Seconds()
	f.AckP50Ms, f.AckP99Ms, f.FirstP99Ms = PercentileMs(res.lat, 50), PercentileMs(res.lat, 99), PercentileMs(res.e2e, 99)
	f.CatchUpMs = float64(res.catchUp) / 1e6
	f.DownAfterLoad, f.LeaderKills = down, len(takeovers)
	if len(takeovers) > 0 {
		f.TakeoverP50Ms, f.TakeoverMaxMs = PercentileMs(takeovers, 50), PercentileMs(takeovers, 100)
	}
	for _, r := range r0s {
		f.Ring0RSSMiB += procMiB(r.cmd.Process.Pid, "VmRSS:")
		f.Ring0PeakMiB = max(f.Ring0PeakMiB, procMiB(r.cmd.Process.Pid, "VmHWM:"))
		r.stop()
	}
	f.Stored, f.AckedMissing, err = countStored(ctx, url, res.ackedNodes, res.ackedSeqs)
	return f, err
}

// startMembers starts n ring 0 processes (opt.Exe) on url: one alone, or n members routed to
// each other, each with a copy of the first one's trust chain. It returns them (those started,
// on an error too) and their brokers' URLs.
func startMembers(ctx context.Context, opt IngestOptions, dir, url string, n int) ([]*ring0Proc, []string, error) {
	memMB := opt.Ring0MemoryMB
	var procs []*ring0Proc
	var urls []string
	if n == 1 {
		p, u, err := startRing0(ctx, opt.Exe, opt.Progress, filepath.Join(dir, "r0-0"), url, memMB)
		if err != nil {
			return nil, nil, err
		}
		return []*ring0Proc{p}, []string{u}, nil
	}
	ports := make([]int, n)
	for i := range ports {
		var err error
		// A member killed and started again binds its route port again while the others
		// dial it: the port must be one no dial takes as its source (see broker.FreePort).
		taken := ports[:i]
		if ports[i], err = broker.FreePort(func(p int) bool { return slices.Contains(taken, p) }); err != nil {
			return nil, nil, err
		}
	}
	for i := range n {
		state := filepath.Join(dir, fmt.Sprintf("r0-%d", i))
		if i > 0 {
			if err := keys.CopyChain(filepath.Join(dir, "r0-0"), state); err != nil {
				return procs, nil, err
			}
		}
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, "127.0.0.1:"+strconv.Itoa(p))
			}
		}
		p, u, err := startRing0(ctx, opt.Exe, opt.Progress, state, url, memMB, "--member", fmt.Sprintf("r0-%d", i),
			"--cluster-listen", "127.0.0.1:"+strconv.Itoa(ports[i]), "--routes", strings.Join(routes, ","))
		if err != nil {
			return procs, nil, err
		}
		procs, urls = append(procs, p), append(urls, u)
	}
	return procs, urls, nil
}

// killLeaders SIGKILLs the member leading ring 0 kills times, evenly over the offered load
// from t0, starting each again (as a standby) at once, and returns how long each time the
// store took to record a newer leader.
func killLeaders(ctx context.Context, url string, r0s []*ring0Proc, kills int, t0 time.Time, dur time.Duration, progress func(string, ...any)) []time.Duration {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		progress("cannot watch the leader: %v", err)
		return nil
	}
	defer conn.Close(ctx)
	leader := func() (epoch int64, member string) {
		_ = conn.QueryRow(ctx, `SELECT epoch, member FROM ring0_leader`).Scan(&epoch, &member)
		return epoch, member
	}
	var took []time.Duration
	for j := 1; j <= kills; j++ {
		time.Sleep(time.Until(t0.Add(dur * time.Duration(j) / time.Duration(kills+1))))
		epoch, member := leader()
		i, err := strconv.Atoi(strings.TrimPrefix(member, "r0-"))
		if err != nil || i < 0 || i >= len(r0s) {
			progress("leader %q is none of the members", member)
			return took
		}
		killed := time.Now()
		_ = r0s[i].cmd.Process.Kill()
		_ = r0s[i].cmd.Wait()
		for e, _ := leader(); e <= epoch && time.Since(killed) < 30*time.Second && ctx.Err() == nil; e, _ = leader() {
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(killed))
		p, _, err := runRing0(ctx, r0s[i].cmd.Path, r0s[i].cmd.Stderr, r0s[i].args)
		if err != nil {
			progress("member r0-%d did not start again: %v", i, err)
			return took
		}
		r0s[i] = p
	}
	return took
}

// downAt counts, at time at, the nodes the store holds as down.
func downAt(ctx context.Context, url string, at time.Time) int64 {
	time.Sleep(time.Until(at))
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return -1
	}
	defer conn.Close(ctx)
	var n int64
	if conn.QueryRow(ctx, `SELECT count(*) FROM nodes WHERE state = 'down'`).Scan(&n) != nil {
		return -1
	}
	return n
}

// createDatabase makes a database on the managed server pg and returns its URL.
func createDatabase(ctx context.Context, pg *postgres.Server, name string) (string, error) {
	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("bench: create database %s: %w", name, err)
	}
	return pg.DatabaseURL(name), nil
}
