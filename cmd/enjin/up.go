package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"enjin"
	"enjin/keys"
	"enjin/rings/ring0"
	"enjin/services/postgres"
	"enjin/supervisors/process"
)

// upNode is the ring 1 node `enjin up` runs on this machine.
const upNode = enjin.NodeID("ring1-local")

// upFlags are the flags of `enjin up`.
type upFlags struct {
	ring0Flags
	noApps  bool
	members int
	hosts   upHosts
}

// registerUpFlags registers every flag of `enjin up`.
func registerUpFlags(fs *pflag.FlagSet, f *upFlags) {
	f.register(fs)
	fs.BoolVar(&f.noApps, "no-apps", false, "run no app router, DNS or instances")
	fs.IntVar(&f.members, "ring0", 1, "ring 0 members to run here as one cluster (the others on free loopback ports, their state under <state-dir>/ring0/)")
	fs.IntVar(&f.hosts.n, "ring1", 1, "ring 1 hosts to run here: ring1-local, and the others (ring1-h2, …) each in a network namespace of its own on a bridge of --hosts-prefix")
	fs.StringVar(&f.hosts.prefix, "hosts-prefix", "198.18.0.0/24", "with --ring1 above 1: the addresses of the bridge (the first) and of the hosts in their namespaces")
}

func upCmd(g *globals) *cobra.Command {
	var f upFlags
	c := &cobra.Command{
		Use:   "up",
		Short: "run an all-in-one cloud here: managed PostgreSQL, ring 0, one ring 1 node",
		Long: `Run a whole cloud on this machine: the trust chain (made or kept), a managed PostgreSQL
(unless --database-url names one), ring 0 and one ring 1 node, ring1-local, hosting apps. Once
the node is up, <state-dir>/endpoints.json says where everything is; client commands read it.
Ctrl-C stops everything.`,
		Example: "  enjin up\n  enjin up --state-dir /var/lib/enjin --no-apps\n  enjin up --ring0 3 --ring1 3",
		Args:    argsBetween(0, 0, "no arguments"),
	}
	registerUpFlags(c.Flags(), &f)
	c.RunE = func(c *cobra.Command, _ []string) error {
		f.apps = !f.noApps
		if f.members < 1 || f.members > maxUpMembers {
			return usagef("--ring0 %d: want 1 to %d members", f.members, maxUpMembers)
		}
		if err := f.hosts.check(f.apps); err != nil {
			return err
		}
		if f.hosts.n > 1 && !c.Flags().Changed("nats-host") {
			f.natsHost = "" // the hosts' bridge's address, once it is made
		}
		return up(c.Context(), c.OutOrStdout(), g.stateDir, f.ring0Flags, f.members, f.hosts)
	}
	return c
}

// up runs the cloud until ctx ends.
func up(ctx context.Context, stdout io.Writer, stateDir string, f ring0Flags, members int, hosts upHosts) error {
	log, err := logger(f.logLevel)
	if err != nil {
		return err
	}
	step := func(format string, a ...any) { fmt.Fprintf(stdout, "enjin up: "+format+"\n", a...) }
	if err := prepareState(stateDir, step); err != nil {
		return err
	}
	dbURL, database := f.dbURL, "external"
	if dbURL == "" {
		pg, err := postgres.Start(ctx, postgres.Config{Dir: filepath.Join(stateDir, "postgres"), Logger: log})
		if err != nil {
			return fmt.Errorf("managed postgres: %w", err)
		}
		defer pg.Close()
		dbURL, database = pg.URL(), "managed"
		step("managed PostgreSQL ready (unix socket %s, pid %d)", pg.SocketDir(), pg.PID())
	} else {
		step("using the PostgreSQL at --database-url")
	}
	return runCloud(ctx, step, stateDir, f, log, dbURL, database, members, hosts)
}

// prepareState makes the state dir and the trust chain in it.
func prepareState(stateDir string, step func(string, ...any)) error {
	// 0711: others may pass through (the postgres user reaches its data dir below) but not
	// list it; every secret inside has its own 0600/0700 mode.
	if err := os.MkdirAll(stateDir, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(stateDir, 0o711); err != nil {
		return err
	}
	step("state in %s", stateDir)
	if _, err := keys.Init(stateDir); err != nil {
		return err
	}
	step("trust chain ready")
	return nil
}

// runCloud runs ring 0 and its ring 1 node on the database until ctx ends, with endpoints.json
// in the state dir while the cloud is up.
func runCloud(ctx context.Context, step func(string, ...any), stateDir string, f ring0Flags, log *slog.Logger, dbURL, database string, members int, hosts upHosts) error {
	specs := []ring0.Ring1Spec{{ID: upNode, Label: "local ring 1"}}
	fab, more, err := hosts.make(f.bridge)
	if err != nil {
		return err
	}
	if fab != nil {
		defer func() {
			if err := fab.Remove(); err != nil {
				log.Warn("the hosts' network namespaces not all removed", "err", err)
			}
		}()
		specs = append(specs, more...)
		if f.natsHost == "" {
			f.natsHost = fab.Gateway.String()
		}
		step("%d more ring 1 hosts in network namespaces on bridge %s (%s): %s", len(more), fab.Bridge, fab.Prefix, specList(more))
	}
	cfg, err := f.config(stateDir, log, dbURL, specs)
	if err != nil {
		return err
	}
	cfgs, err := clusterConfigs(stateDir, cfg, members, log)
	if err != nil {
		return err
	}
	r, others, err := openMembers(ctx, cfgs)
	if err != nil {
		return err
	}
	step("ring 0 listening: api %s, nats %s", r.APIURL(), r.NATSURL())
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }() // every member has stopped when up returns
	for i, o := range others {
		step("ring 0 member %s listening: api %s, nats %s", cfgs[i+1].Cluster.Member, o.APIURL(), o.NATSURL())
		wg.Go(func() { // ends with runCtx
			if err := o.Run(runCtx); err != nil && runCtx.Err() == nil {
				log.Error("ring 0 member stopped", "member", cfgs[i+1].Cluster.Member, "err", err)
			}
		})
	}
	done := make(chan struct{}) // closed when Run has returned runErr
	var runErr error
	go func() { // ends when runCtx ends, after stopping ring 1, or when ring 1 cannot start
		runErr = r.Run(runCtx)
		close(done)
	}()

	ep, err := ready(ctx, r, stateDir, database, done, &runErr)
	if err == nil {
		if f.apps {
			ep.Router, ep.AppsDomain, ep.DNS, ep.RouterTLS = f.routerAddr, f.appsDomain, f.dnsAddr, f.routerTLS
		}
		for _, o := range others {
			ep.APIs, ep.NATSURLs = append(ep.APIs, o.APIURL()), append(ep.NATSURLs, o.NATSURL())
		}
		err = writeEndpoints(stateDir, ep)
	}
	if err != nil {
		stop()
		<-done
		return startFailure(step, err)
	}
	epPath := filepath.Join(stateDir, "endpoints.json")
	step("ring 1 node %s is up; endpoints in %s", upNode, epPath)
	if fab != nil {
		hostsUp(ctx, r, specs[1:], step)
	}
	announce(step, ep, f.apps)
	<-done
	err = runErr
	os.Remove(epPath)
	step("stopped")
	return startFailure(step, err)
}

// openMembers opens every ring 0 member of cfgs: the others, which run no ring 1 node, then
// the first, which does. If one fails, those opened are closed.
func openMembers(ctx context.Context, cfgs []ring0.Config) (*ring0.Ring0, []*ring0.Ring0, error) {
	var others []*ring0.Ring0
	closeAll := func() {
		for _, o := range others {
			o.Close()
		}
	}
	for _, c := range cfgs[1:] {
		o, err := ring0.New(ctx, c)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("ring 0 member %s: %w", c.Cluster.Member, err)
		}
		others = append(others, o)
	}
	r, err := ring0.New(ctx, cfgs[0])
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return r, others, nil
}

// announce tells the operator how to watch, query and reach the cloud just up.
func announce(step func(string, ...any), ep Endpoints, apps bool) {
	step("watch: nats --creds %s -s %s sub 'ops.>'", ep.OpsCreds, ep.NATS)
	step("query: curl -H @%s %s/v1/nodes", ep.AdminHeaderFile, ep.API)
	if apps {
		step("apps: http://%s with Host <app>.<tenant>.%s (DNS on %s)", ep.Router, ep.AppsDomain, ep.DNS)
	}
}

// startFailure prints, when ring 0 stopped because its ring 1 node could not start, the last
// lines the node wrote, so the reason is on the screen and not only in a log file.
func startFailure(step func(string, ...any), err error) error {
	if se, ok := errors.AsType[*process.StartError](err); ok {
		step("ring 1 node %s failed to start %d times; its last words:", se.Name, se.Failures)
		for _, l := range se.Tail {
			step("  | %s", l)
		}
	}
	return err
}

// ready waits for the ring 1 node to be up and writes the OPS creds; the caller writes
// endpoints.json, last, since its appearance tells the world the cloud is ready.
func ready(ctx context.Context, r *ring0.Ring0, stateDir, database string, done <-chan struct{}, runErr *error) (Endpoints, error) {
	deadline := time.Now().Add(60 * time.Second)
	// Up as of now: a heartbeat committed since ring 0 started, not a state stored by an
	// earlier run (the node may be one this run adopted, or one that died meanwhile).
	var seq uint64
	if n, err := r.Store().GetNode(ctx, upNode); err == nil {
		seq = n.LastSeq
	}
	for {
		n, err := r.Store().GetNode(ctx, upNode)
		if err == nil && n.State == "up" && n.LastSeq > seq {
			break
		}
		select {
		case <-done:
			return Endpoints{}, fmt.Errorf("ring 0 stopped while starting: %w", *runErr)
		case <-ctx.Done():
			return Endpoints{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return Endpoints{}, errors.New("ring 1 node not up within 60s (see " + filepath.Join(stateDir, "nodes", string(upNode), "ring1.log") + ")")
		}
	}
	creds, err := r.OpsCreds(ctx, "ops")
	if err != nil {
		return Endpoints{}, err
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	ep := Endpoints{API: r.APIURL(), NATS: r.NATSURL(), APIs: []string{r.APIURL()}, NATSURLs: []string{r.NATSURL()},
		AdminTokenFile: abs(r.AdminTokenFile()),
		OpsCreds:       abs(filepath.Join(stateDir, "ops.creds")), Database: database, Ring1: string(upNode), CA: abs(r.CAFile())}
	if err := keys.WriteCreds(ep.OpsCreds, creds); err != nil {
		return Endpoints{}, err
	}
	if ep.AdminHeaderFile, err = writeAdminHeader(stateDir, ep.AdminTokenFile); err != nil {
		return Endpoints{}, err
	}
	return ep, nil
}

// writeAdminHeader writes the admin token as a header for `curl -H @file` to
// stateDir/admin.header (0600), so it never goes on a command line, where any user of the
// machine could read it; it returns the file's absolute path.
func writeAdminHeader(stateDir, tokenFile string) (string, error) {
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return "", err
	}
	p, err := filepath.Abs(filepath.Join(stateDir, "admin.header"))
	if err != nil {
		return "", err
	}
	return p, keys.WriteCreds(p, []byte("Authorization: Bearer "+strings.TrimSpace(string(tok))+"\n"))
}

func writeEndpoints(stateDir string, ep Endpoints) error {
	b, _ := json.MarshalIndent(ep, "", "  ")
	return keys.WriteCreds(filepath.Join(stateDir, "endpoints.json"), append(b, '\n'))
}
