package bench

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/services/inventory"
	"enjin/services/postgres"
)

// IngestFigures are one run's results of Ingest.
type IngestFigures struct {
	Nodes         int              `json:"nodes"`
	OfferedRate   float64          `json:"offered_per_sec"`
	Sent          int              `json:"sent"`
	Acked         int64            `json:"acked"`
	Refused       int64            `json:"refused"`
	Deferred      int64            `json:"deferred"`
	Timeouts      int64            `json:"timeouts"`
	Resigned      int64            `json:"resigned"`        // sends signed as sent, more than resignAfter late
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

// IngestOptions are the options of Ingest.
type IngestOptions struct {
	Exe           string        // the enjin binary: each ring 0 member is `Exe ring0 …`
	Nodes         int           // simulated ring 1 nodes
	Rate          float64       // observations offered per second, all nodes together
	Duration      time.Duration // how long load is offered
	Conns         int           // publisher connections
	DatabaseURL   string        // a PostgreSQL to use; "": a managed one in a temp dir
	FastDB        bool          // the managed PostgreSQL without fsync
	Ring0MemoryMB int           // each member's memory budget (its --memory-mb)
	Members       int           // ring 0 members; above 1 a run of one member comes first
	LeaderKills   int           // SIGKILLs of the leading member while load is offered (Members > 1)
	Output        string        // "text" or "json"
	Progress      io.Writer     // progress lines and ring 0's stderr; nil: none
}

// Ingest offers ring 0 (Members processes, on a managed PostgreSQL unless DatabaseURL names
// one) the signed heartbeats of Nodes simulated ring 1 nodes at Rate for Duration, over the
// real broker, and reports what it committed, deferred and refused, how fast it acknowledged,
// its memory, and whether every acknowledged observation is in the store. With Members above
// 1 it runs one member first, then the cluster, each on a fresh database, and with JSON output
// prints both runs as an array.
func Ingest(ctx context.Context, opt IngestOptions, stdout io.Writer) error {
	if opt.Nodes < 1 || opt.Rate <= 0 || opt.Duration <= 0 || opt.Conns < 1 || opt.Ring0MemoryMB < 128 || opt.Members < 1 || opt.Members > 9 || (opt.Output != "text" && opt.Output != "json") {
		return usagef("bench ingest: --nodes, --rate, --duration and --conns must be positive, --ring0-memory-mb at least 128, --ring0 1 to 9; -o text or json")
	}
	if opt.LeaderKills < 0 || opt.LeaderKills > 0 && opt.Members < 2 {
		return usagef("bench ingest: --kill-leader needs --ring0 above 1")
	}
	if opt.Members > 1 && opt.DatabaseURL != "" {
		return usagef("bench ingest: --ring0 above 1 runs twice, each on a fresh managed database: no --database-url")
	}
	progress := progressTo(opt.Progress, "bench ingest: ")
	dir, err := os.MkdirTemp("/tmp", "enjin-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // the postgres user must reach its data dir below

	url := opt.DatabaseURL
	var pg *postgres.Server
	if url == "" {
		if pg, err = postgres.Start(ctx, postgres.Config{Dir: filepath.Join(dir, "pg"), Fast: opt.FastDB}); err != nil {
			return err
		}
		defer pg.Close()
		url = pg.URL()
	}
	progress("making %d attestation keys", opt.Nodes)
	signers := makeSigners(opt.Nodes)
	phases := []int{1}
	if opt.Members > 1 {
		phases = append(phases, opt.Members) // one member beside them, in the same run
	}
	var figs []IngestFigures
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
	case opt.Output == "json" && len(figs) == 1:
		return json.NewEncoder(stdout).Encode(figs[0])
	case opt.Output == "json":
		return json.NewEncoder(stdout).Encode(figs)
	}
	for _, f := range figs {
		printIngest(stdout, f, opt.Duration)
	}
	if len(figs) > 1 {
		one, many := figs[0], figs[1]
		fmt.Fprintf(stdout, "%d members / one        committed while offered %.2f×, accepted ack p99 %.2f×\n",
			many.Members, many.WindowRate/one.WindowRate, many.AckP99Ms/one.AckP99Ms)
	}
	return nil
}

// printIngest prints one run's figures.
func printIngest(stdout io.Writer, f IngestFigures, dur time.Duration) {
	fmt.Fprintf(stdout, "ring 0 members           %d\n", f.Members)
	fmt.Fprintf(stdout, "nodes                    %d\n", f.Nodes)
	fmt.Fprintf(stdout, "offered                  %.0f obs/s for %v (%d sent)\n", f.OfferedRate, dur, f.Sent)
	fmt.Fprintf(stdout, "committed (acknowledged) %.0f obs/s (%.0f/s while offered; %d acked, %d refused, %d lost)\n", f.CommittedRate, f.WindowRate, f.Acked, f.Refused, int64(f.Sent)-f.Acked-f.Refused)
	fmt.Fprintf(stdout, "deferred (sent again)    %.0f /s (%d, each sent again after the retry-after asked; %d unanswered in %v, sent again)\n", f.DeferredRate, f.Deferred, f.Timeouts, ackTimeout)
	fmt.Fprintf(stdout, "signed as sent           %d (more than %v late: signed then, on the bench's CPU, not ahead)\n", f.Resigned, resignAfter)
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

// simSigner is a simulated node's signer, which can also sign under a seq of its choosing.
type simSigner struct {
	*bus.Signer
	priv ed25519.PrivateKey
}

// signAs seals payload at now under seq: for a heartbeat signed ahead and sent late, signed
// again when sent under the seq it was signed ahead with (or just above it), so the node's
// later heartbeats, signed ahead under higher seqs, may still be sent as signed ahead.
func (s *simSigner) signAs(payload []byte, now time.Time, seq uint64) nats.Header {
	ts := now.UnixNano()
	sig := ed25519.Sign(s.priv, bus.Canonical(nil, s.Node(), ts, seq, payload))
	return bus.Seal{Signer: s.Public(), Ts: ts, Seq: seq, Sig: sig}.Header()
}

// makeSigners makes n simulated nodes' attestation keys.
func makeSigners(n int) []*simSigner {
	signers := make([]*simSigner, n)
	var wg sync.WaitGroup
	procs := runtime.GOMAXPROCS(0)
	for p := range procs {
		wg.Go(func() {
			for i := p; i < n; i += procs {
				a, _ := keys.NewAttestation()
				signers[i] = &simSigner{bus.NewSigner(enjin.NodeID(fmt.Sprintf("sim-%06d", i)), a), a.PrivateKey()}
			}
		})
	}
	wg.Wait()
	return signers
}

// registerFleet registers the simulated nodes, with their attestation keys, in the store.
func registerFleet(ctx context.Context, url string, signers []*simSigner) error {
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

// startRing0 runs `enjin ring0` (exe ring0) as a child so its memory and CPU are its own;
// its stderr goes to stderr.
func startRing0(ctx context.Context, exe string, stderr io.Writer, state, url string, memMB int, extra ...string) (*ring0Proc, string, error) {
	return runRing0(ctx, exe, stderr, append([]string{"ring0", "--state-dir", state, "--database-url", url, "--nats-port", "-1",
		"--api-addr", "127.0.0.1:0", "--log-level", "warn", "--memory-mb", strconv.Itoa(memMB)}, extra...))
}

// runRing0 runs exe with args (`enjin ring0 …`), its stderr to stderr, and waits for the
// line that says where its broker listens.
func runRing0(ctx context.Context, exe string, stderr io.Writer, args []string) (*ring0Proc, string, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = stderr
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
	seq  uint64 // hdr's
	data []byte
}

// presign signs every heartbeat ahead, stamped with the time it will be sent.
func presign(signers []*simSigner, total int, rate float64, t0 time.Time) []signedMsg {
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
					sl := s.Sign(b, at)
					msgs[k] = signedMsg{node: s.Node(), hdr: sl.Header(), seq: sl.Seq, data: b}
				}
			}
		})
	}
	wg.Wait()
	return msgs
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
