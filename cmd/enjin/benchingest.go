package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/rings/ring0"
	"enjin/services/inventory"
	"enjin/services/postgres"
)

type ingestFigures struct {
	Nodes         int              `json:"nodes"`
	OfferedRate   float64          `json:"offered_per_sec"`
	Sent          int              `json:"sent"`
	Acked         int64            `json:"acked"`
	Refused       int64            `json:"refused"`
	Deferred      int64            `json:"deferred"`
	Timeouts      int64            `json:"timeouts"`
	NoResponders  int64            `json:"no_responders"`   // the broker's answers: nobody subscribed yet
	Reasons       map[string]int64 `json:"reasons"`         // of the refusals and deferrals
	Stored        int64            `json:"stored"`          // observations in the store afterwards
	AckedMissing  int64            `json:"acked_missing"`   // acknowledged sends not in the store
	Ring0MemMB    int              `json:"ring0_memory_mb"` // each member's
	Members       int              `json:"ring0_members"`
	LeaderKills   int              `json:"leader_kills,omitempty"`
	TakeoverP50Ms float64          `json:"takeover_p50_ms,omitempty"`
	TakeoverMaxMs float64          `json:"takeover_max_ms,omitempty"`
	DownAfterLoad int64            `json:"nodes_down_at_load_end"` // judged down as the offered load ended
	DeferredRate  float64          `json:"deferred_per_sec"`
	CommittedRate float64          `json:"committed_per_sec"`
	WindowRate    float64          `json:"committed_while_offered_per_sec"`
	AckP50Ms      float64          `json:"ack_p50_ms"`
	AckP99Ms      float64          `json:"ack_p99_ms"`
	FirstP99Ms    float64          `json:"due_to_ack_p99_ms"`
	CatchUpMs     float64          `json:"catch_up_ms"`
	Ring0RSSMiB   float64          `json:"ring0_rss_mib"`
	Ring0PeakMiB  float64          `json:"ring0_peak_rss_mib"`
	RawVerify2c   float64          `json:"raw_ed25519_verify_per_sec"`
	Ratio         float64          `json:"ratio"`
	DurableDB     bool             `json:"durable_db"`
}

// ingestFlags are the flags of `enjin bench ingest`.
type ingestFlags struct {
	nodes, conns int
	rate         float64
	dur          time.Duration
	dbURL, out   string
	fast         bool
	ring0MemMB   int
	members      int // ring 0 members
	kills        int // leader kills while load is offered (clusters only)
}

func benchIngestCmd() *cobra.Command {
	var f ingestFlags
	c := &cobra.Command{
		Use:   "ingest",
		Short: "simulated ring 1 nodes → real broker → ring 0 → real store: committed obs/s, ack p50/p99, ring 0 RSS",
		Args:  argsBetween(0, 0, "no arguments"),
		RunE:  func(c *cobra.Command, _ []string) error { return benchIngest(c.Context(), f, c.OutOrStdout()) },
	}
	fs := c.Flags()
	fs.IntVar(&f.nodes, "nodes", 100000, "simulated ring 1 nodes")
	fs.Float64Var(&f.rate, "rate", 20000, "observations offered per second (all nodes together)")
	fs.DurationVar(&f.dur, "duration", 20*time.Second, "how long to offer load")
	fs.IntVar(&f.conns, "conns", 4, "publisher connections")
	fs.StringVar(&f.dbURL, "database-url", "", "use this PostgreSQL instead of a managed one in a temp dir")
	fs.BoolVar(&f.fast, "fast-db", false, "managed PostgreSQL without fsync (not durable; default is durable)")
	fs.IntVar(&f.ring0MemMB, "ring0-memory-mb", ring0.DefaultMemoryMB, "ring 0's memory budget (its --memory-mb), each member's")
	fs.IntVar(&f.members, "ring0", 1, "ring 0 members (a cluster on the same cores); more than one also runs one member first, in the same run, to compare")
	fs.IntVar(&f.kills, "kill-leader", 0, "with --ring0 above 1: SIGKILL the leading member this many times while load is offered, starting it again as a standby")
	fs.StringVarP(&f.out, "output", "o", "text", "output format: text or json")
	return c
}

func benchIngest(ctx context.Context, opt ingestFlags, stdout io.Writer) error {
	nodes, rate, dur, conns, dbURL, fast, out := &opt.nodes, &opt.rate, &opt.dur, &opt.conns, &opt.dbURL, &opt.fast, &opt.out
	if *nodes < 1 || *rate <= 0 || *dur <= 0 || *conns < 1 || opt.ring0MemMB < 128 || opt.members < 1 || opt.members > 9 || (*out != "text" && *out != "json") {
		return usagef("bench ingest: --nodes, --rate, --duration and --conns must be positive, --ring0-memory-mb at least 128, --ring0 1 to 9; -o text or json")
	}
	if opt.kills < 0 || opt.kills > 0 && opt.members < 2 {
		return usagef("bench ingest: --kill-leader needs --ring0 above 1")
	}
	if opt.members > 1 && *dbURL != "" {
		return usagef("bench ingest: --ring0 above 1 runs twice, each on a fresh managed database: no --database-url")
	}
	progress := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench ingest: "+f+"\n", a...) }
	dir, err := os.MkdirTemp("/tmp", "enjin-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // the postgres user must reach its data dir below

	url := *dbURL
	var pg *postgres.Server
	if url == "" {
		if pg, err = postgres.Start(ctx, postgres.Config{Dir: filepath.Join(dir, "pg"), Fast: *fast}); err != nil {
			return err
		}
		defer pg.Close()
		url = pg.URL()
	}
	progress("making %d attestation keys", *nodes)
	signers := makeSigners(*nodes)
	phases := []int{1}
	if opt.members > 1 {
		phases = append(phases, opt.members) // one member beside them, in the same run
	}
	var figs []ingestFigures
	for i, members := range phases {
		if i > 0 {
			if url, err = createDatabase(ctx, pg, fmt.Sprintf("phase%d", i)); err != nil {
				return err
			}
		}
		f, err := ingestPhase(ctx, opt, filepath.Join(dir, fmt.Sprintf("phase%d", i)), url, members, signers, progress)
		if err != nil {
			return err
		}
		figs = append(figs, f)
	}
	progress("measuring raw ed25519 verify on %d cores", runtime.GOMAXPROCS(0))
	raw := perSecond(func(n int) func() { return benchRaw(n, true) })
	for i := range figs {
		figs[i].RawVerify2c, figs[i].Ratio = raw, figs[i].CommittedRate/raw
	}
	switch {
	case *out == "json" && len(figs) == 1:
		return json.NewEncoder(stdout).Encode(figs[0])
	case *out == "json":
		return json.NewEncoder(stdout).Encode(figs)
	}
	for _, f := range figs {
		printIngest(stdout, f, *dur)
	}
	if len(figs) > 1 {
		one, many := figs[0], figs[1]
		fmt.Fprintf(stdout, "%d members / one        committed while offered %.2f×, accepted ack p99 %.2f×\n",
			many.Members, many.WindowRate/one.WindowRate, many.AckP99Ms/one.AckP99Ms)
	}
	return nil
}

// printIngest prints one run's figures.
func printIngest(stdout io.Writer, f ingestFigures, dur time.Duration) {
	fmt.Fprintf(stdout, "ring 0 members           %d\n", f.Members)
	fmt.Fprintf(stdout, "nodes                    %d\n", f.Nodes)
	fmt.Fprintf(stdout, "offered                  %.0f obs/s for %v (%d sent)\n", f.OfferedRate, dur, f.Sent)
	fmt.Fprintf(stdout, "committed (acknowledged) %.0f obs/s (%.0f/s while offered; %d acked, %d refused, %d lost)\n", f.CommittedRate, f.WindowRate, f.Acked, f.Refused, int64(f.Sent)-f.Acked-f.Refused)
	fmt.Fprintf(stdout, "deferred (sent again)    %.0f /s (%d, each sent again after the retry-after asked; %d unanswered in %v, sent again)\n", f.DeferredRate, f.Deferred, f.Timeouts, ackTimeout)
	fmt.Fprintf(stdout, "ack latency (accepted)   p50 %.1f ms, p99 %.1f ms; due → ack p99 %.1f ms\n", f.AckP50Ms, f.AckP99Ms, f.FirstP99Ms)
	fmt.Fprintf(stdout, "caught up                %.0f ms after the offered load ended\n", f.CatchUpMs)
	fmt.Fprintf(stdout, "ring 0 RSS               %.0f MiB (peak %.0f MiB a member; budget %d MiB each)\n", f.Ring0RSSMiB, f.Ring0PeakMiB, f.Ring0MemMB)
	fmt.Fprintf(stdout, "stored afterwards        %d observations; %d acknowledged ones missing; reasons given %v\n", f.Stored, f.AckedMissing, f.Reasons)
	fmt.Fprintf(stdout, "nodes down at load end   %d; the broker answered \"no responders\" %d times\n", f.DownAfterLoad, f.NoResponders)
	if f.LeaderKills > 0 {
		fmt.Fprintf(stdout, "leader killed            %d times (SIGKILL); next leader after p50 %.0f ms, max %.0f ms\n", f.LeaderKills, f.TakeoverP50Ms, f.TakeoverMaxMs)
	}
	fmt.Fprintf(stdout, "raw ed25519 verify       %.0f /s on %d cores (same run)\n", f.RawVerify2c, runtime.GOMAXPROCS(0))
	fmt.Fprintf(stdout, "ratio committed/raw      %.2f   (durable store: %v)\n", f.Ratio, f.DurableDB)
}

// countStored counts the observations in the store, and how many of the acknowledged
// sends, named by node and seq, are not there.
func countStored(ctx context.Context, url string, nodes []string, seqs []int64) (stored, missing int64, err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM node_observations`).Scan(&stored); err != nil {
		return 0, 0, err
	}
	err = conn.QueryRow(ctx, `SELECT count(*) FROM unnest($1::text[], $2::bigint[]) AS a (node, seq)
		WHERE NOT EXISTS (SELECT 1 FROM node_observations o WHERE o.node_id = a.node AND o.seq = a.seq)`, nodes, seqs).Scan(&missing)
	return stored, missing, err
}

// makeSigners makes n simulated nodes' attestation keys.
func makeSigners(n int) []*bus.Signer {
	signers := make([]*bus.Signer, n)
	var wg sync.WaitGroup
	procs := runtime.GOMAXPROCS(0)
	for p := range procs {
		wg.Go(func() {
			for i := p; i < n; i += procs {
				a, _ := keys.NewAttestation()
				signers[i] = bus.NewSigner(enjin.NodeID(fmt.Sprintf("sim-%06d", i)), a)
			}
		})
	}
	wg.Wait()
	return signers
}

// registerFleet registers the simulated nodes, with their attestation keys, in the store.
func registerFleet(ctx context.Context, url string, signers []*bus.Signer) error {
	store, err := inventory.Open(ctx, url, nil)
	if err != nil {
		return err
	}
	defer store.Close()
	ns := make([]inventory.Node, len(signers))
	for i, s := range signers {
		ns[i] = inventory.Node{ID: s.Node(), Ring: enjin.Ring1, Supervision: "external", Observation: "self", AttestPub: s.Public()}
	}
	for i := 0; i < len(ns); i += 10000 {
		if err := store.RegisterNodes(ctx, ns[i:min(i+10000, len(ns))]); err != nil {
			return err
		}
	}
	return nil
}

type ring0Proc struct {
	cmd  *exec.Cmd
	once sync.Once
	args []string // how it was started, to start it again
}

func (p *ring0Proc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
	})
}

// startRing0 runs `enjin ring0` as a child so its memory and CPU are its own.
func startRing0(ctx context.Context, state, url string, memMB int, extra ...string) (*ring0Proc, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	return runRing0(ctx, exe, append([]string{"ring0", "--state-dir", state, "--database-url", url, "--nats-port", "-1",
		"--api-addr", "127.0.0.1:0", "--log-level", "warn", "--memory-mb", strconv.Itoa(memMB)}, extra...))
}

// runRing0 runs exe with args (`enjin ring0 …`) and waits for the line that says where its
// broker listens.
func runRing0(ctx context.Context, exe string, args []string) (*ring0Proc, string, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &ring0Proc{cmd: cmd, args: args}
	line, err := bufio.NewReader(pipe).ReadString('\n')
	if err != nil {
		p.stop()
		return nil, "", fmt.Errorf("ring 0 did not start: %w", err)
	}
	i := strings.Index(line, " nats ")
	if i < 0 {
		p.stop()
		return nil, "", fmt.Errorf("ring 0 said %q", line)
	}
	go io.Copy(io.Discard, pipe) // ends when ring 0 exits
	return p, strings.TrimSpace(line[i+len(" nats "):]), nil
}

type signedMsg struct {
	node enjin.NodeID
	hdr  nats.Header
	data []byte
}

// presign signs every heartbeat ahead, stamped with the time it will be sent.
func presign(signers []*bus.Signer, total int, rate float64, t0 time.Time) []signedMsg {
	msgs := make([]signedMsg, total)
	var wg sync.WaitGroup
	procs := runtime.GOMAXPROCS(0)
	for p := range procs {
		wg.Go(func() {
			// each node's messages are signed by one goroutine, in order, so seqs rise
			for i := p; i < len(signers); i += procs {
				s := signers[i]
				for k := i; k < total; k += len(signers) {
					at := t0.Add(time.Duration(float64(k) / rate * float64(time.Second)))
					b, _ := json.Marshal(enjin.Observation{Node: s.Node(), Ring: enjin.Ring1, State: enjin.StateUp, Time: at, MemBytes: 64 << 20})
					msgs[k] = signedMsg{node: s.Node(), hdr: s.Sign(b, at).Header(), data: b}
				}
			}
		})
	}
	wg.Wait()
	return msgs
}

func percentileMs(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return float64(d[min(len(d)-1, len(d)*p/100)]) / 1e6
}

// procMiB reads a memory figure (VmRSS:, VmHWM:) of pid from /proc.
func procMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
