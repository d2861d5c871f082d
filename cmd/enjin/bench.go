package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"enjin/bench"
	"enjin/rings/ring0"
)

func benchCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "measure enjin on this machine: verify, ingest, router, vm, net",
		Example: `  enjin bench verify
  enjin bench ingest --nodes 100000 --rate 20000
  enjin bench router -o json
  enjin bench vm --kernel var/guest/vmlinuz --initrd var/guest/initrd.img
  enjin bench net`,
	}
	c.AddCommand(benchVerifyCmd(), benchIngestCmd(), benchRouterCmd(), benchVMCmd(g), benchNetCmd(), benchDeployCmd(g))
	return c
}

// benchErr makes the benchmarks' usage errors the CLI's (exit status 2).
func benchErr(err error) error {
	if _, ok := errors.AsType[*bench.UsageError](err); ok {
		return usageError{err}
	}
	return err
}

func benchVerifyCmd() *cobra.Command {
	var o bench.VerifyOptions
	c := &cobra.Command{
		Use:   "verify",
		Short: "envelope sign/s and verify/s next to raw crypto/ed25519 verify/s, 1 core and all cores",
		Args:  argsBetween(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			return benchErr(bench.Verify(c.Context(), o, c.OutOrStdout()))
		},
	}
	c.Flags().StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
	return c
}

func benchIngestCmd() *cobra.Command {
	var o bench.IngestOptions
	c := &cobra.Command{
		Use:   "ingest",
		Short: "simulated ring 1 nodes → real broker → ring 0 → real store: committed obs/s, ack p50/p99, ring 0 RSS",
		Args:  argsBetween(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) (err error) {
			if o.Exe, err = os.Executable(); err != nil {
				return err
			}
			o.Progress = c.ErrOrStderr()
			return benchErr(bench.Ingest(c.Context(), o, c.OutOrStdout()))
		},
	}
	fs := c.Flags()
	fs.IntVar(&o.Nodes, "nodes", 100000, "simulated ring 1 nodes")
	fs.Float64Var(&o.Rate, "rate", 20000, "observations offered per second (all nodes together)")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "how long to offer load")
	fs.IntVar(&o.Conns, "conns", 4, "publisher connections")
	fs.StringVar(&o.DatabaseURL, "database-url", "", "use this PostgreSQL instead of a managed one in a temp dir")
	fs.BoolVar(&o.FastDB, "fast-db", false, "managed PostgreSQL without fsync (not durable; default is durable)")
	fs.IntVar(&o.Ring0MemoryMB, "ring0-memory-mb", ring0.DefaultMemoryMB, "ring 0's memory budget (its --memory-mb), each member's")
	fs.IntVar(&o.Members, "ring0", 1, "ring 0 members (a cluster on the same cores); more than one also runs one member first, in the same run, to compare")
	fs.IntVar(&o.LeaderKills, "kill-leader", 0, "with --ring0 above 1: SIGKILL the leading member this many times while load is offered, starting it again as a standby")
	fs.StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
	return c
}

func benchRouterCmd() *cobra.Command {
	var o bench.RouterOptions
	var serveBackend string
	c := &cobra.Command{
		Use:   "router",
		Short: "wrk against the app router, nginx (reverse proxy, upstream keepalive) and Go's httputil.ReverseProxy, same backend, same run",
		Args:  argsBetween(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			if serveBackend != "" { // the backend, a child of the benchmark (see o.Backend)
				return bench.ServeBackend(serveBackend, c.InOrStdin(), c.OutOrStdout())
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Backend, o.Progress = []string{exe, "bench", "router", "--serve-backend"}, c.ErrOrStderr()
			if addr := os.Getenv("ENJIN_PPROF"); addr != "" { // profile the router (and the Go proxy) as they run
				startPprof(addr, slog.Default())
			}
			return benchErr(bench.Router(c.Context(), o, c.OutOrStdout()))
		},
	}
	fs := c.Flags()
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long wrk loads each proxy per round")
	fs.IntVar(&o.Connections, "connections", 64, "wrk connections")
	fs.IntVar(&o.Threads, "threads", 2, "wrk threads")
	fs.IntVar(&o.Rounds, "rounds", 3, "rounds, each loading the router, nginx, then Go's ReverseProxy")
	fs.StringVar(&o.NginxWorkers, "nginx-workers", "auto", "nginx worker_processes (auto: one per core, as the router uses every core)")
	fs.BoolVar(&o.AccessLog, "access-log", false, "both proxies log every request to a buffered file in the temp dir")
	fs.BoolVar(&o.BackendInProcess, "backend-in-process", false, "run the backend in this process (sharing the router's Go runtime) instead of a child process")
	fs.StringVar(&serveBackend, "serve-backend", "", "internal: serve the backend on this address until stdin closes")
	fs.MarkHidden("serve-backend")
	fs.StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
	return c
}

func benchNetCmd() *cobra.Command {
	var o bench.NetOptions
	var secs float64
	c := &cobra.Command{
		Use:   "net",
		Short: "TCP throughput and request latency between two hosts' endpoints over a tenant network (VXLAN) next to the plain underlay",
		Long: `Two hosts in network namespaces of their own, joined by an underlay veth (198.18.0.0/15),
each carrying one tenant network's segment (netseg: bridge and VXLAN device, as ring 1 makes
them) with an endpoint on it. Measures, in one run, TCP bulk throughput and the latency of
64-byte request/response round trips: host to host over the underlay, and endpoint to
endpoint over the segment. Prints both and the ratios. Needs root; leaves nothing behind.`,
		Example: "  enjin bench net --seconds 3 --requests 5000 -o json",
		Args:    argsBetween(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			o.Duration = time.Duration(secs * float64(time.Second))
			return benchErr(bench.Net(c.Context(), o, c.OutOrStdout()))
		},
	}
	c.Flags().Float64Var(&secs, "seconds", 3, "how long each throughput run lasts")
	c.Flags().IntVar(&o.Requests, "requests", 5000, "request/response round trips per path")
	c.Flags().StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
	return c
}

func benchDeployCmd(g *globals) *cobra.Command {
	var o bench.DeployOptions
	c := &cobra.Command{
		Use:   "deploy TENANT/APP DIR",
		Short: "deploy DIR as an app again and again, timing each phase from the command's start to the first 200 through the router",
		Long: `Deploys a copy of DIR to TENANT/APP on the running cloud (the state dir's), --runs times with
one file changed before each (packed and uploaded), then --runs times unchanged (deployed by
digest), and prints when each phase was reached, from the command's start: packed, unpacked
(the node has the bundle), starting, healthy, live (traffic moved) and routed (the first 200
through the router after). DIR itself is not changed.`,
		Example: "  enjin bench deploy acme/hello test/sampleapp-dir --runs 5 -o json",
		Args:    argsBetween(2, 2, "TENANT/APP DIR"),
		RunE: func(c *cobra.Command, args []string) error {
			t, a, err := appRef(args[0])
			if err != nil {
				return err
			}
			o.App, o.Dir, o.Progress = string(t)+"/"+a, args[1], c.ErrOrStderr()
			if err := o.Check(); err != nil {
				return benchErr(err)
			}
			ep, err := readEndpoints(g.stateDir)
			if err != nil || ep.Router == "" {
				return fmt.Errorf("bench deploy: no running cloud's router in %s: %v", g.stateDir, err)
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			o.URL, o.Host = "http://"+ep.Router+"/", fmt.Sprintf("%s.%s.%s", a, t, ep.AppsDomain)
			o.Deploy = func(ctx context.Context, dir string, progress io.Writer) error {
				_, err := (&deployment{cl: cl, tenant: t, app: a, progress: progress, detail: io.Discard}).run(ctx, dir)
				return err
			}
			return benchErr(bench.Deploy(c.Context(), o, c.OutOrStdout()))
		},
	}
	c.Flags().IntVar(&o.Runs, "runs", 5, "deploys of each kind")
	c.Flags().StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
	return c
}
