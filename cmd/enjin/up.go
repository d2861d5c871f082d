package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"enjin/keys"
	"enjin/rings"
	"enjin/rings/ring0"
	"enjin/services/postgres"
)

// upNode is the ring 1 node `enjin up` runs on this machine.
const upNode = rings.NodeID("ring1-local")

// Endpoints is what `enjin up` writes to <state>/endpoints.json once the cloud is ready;
// client commands read it.
type Endpoints struct {
	API            string `json:"api"`
	NATS           string `json:"nats"`
	AdminTokenFile string `json:"admin_token_file"`
	OpsCreds       string `json:"ops_creds"`
	Database       string `json:"database"` // "managed" or "external"
	Ring1          string `json:"ring1"`
	Router         string `json:"router"`      // where apps are reached: Host <app>.<tenant>.<apps_domain>
	AppsDomain     string `json:"apps_domain"` // ditto
	DNS            string `json:"dns"`         // answers A for app names with the router's address
}

func cmdUp(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	var f ring0Flags
	f.register(fs)
	noApps := fs.Bool("no-apps", false, "run no app router, DNS or instances")
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		return err
	}
	f.apps = !*noApps
	log, err := logger(f.logLevel)
	if err != nil {
		return err
	}
	step := func(format string, a ...any) { fmt.Fprintf(stdout, "enjin up: "+format+"\n", a...) }
	// 0711: others may pass through (the postgres user reaches its data dir below) but not
	// list it; every secret inside has its own 0600/0700 mode.
	if err := os.MkdirAll(f.stateDir, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(f.stateDir, 0o711); err != nil {
		return err
	}
	abs, _ := filepath.Abs(f.stateDir)
	step("state in %s", abs)
	if _, err := keys.Init(f.stateDir); err != nil {
		return err
	}
	step("trust chain ready")

	dbURL, database := f.dbURL, "external"
	if dbURL == "" {
		pg, err := postgres.Start(ctx, postgres.Config{Dir: filepath.Join(f.stateDir, "postgres"), Logger: log})
		if err != nil {
			return fmt.Errorf("managed postgres: %w", err)
		}
		defer pg.Close()
		dbURL, database = pg.URL(), "managed"
		step("managed PostgreSQL ready (unix socket %s, pid %d)", pg.SocketDir(), pg.PID())
	} else {
		step("using the PostgreSQL at --database-url")
	}

	cfg, err := f.config(log, dbURL, []ring0.Ring1Spec{{ID: upNode, Label: "local ring 1"}})
	if err != nil {
		return err
	}
	r, err := ring0.New(ctx, cfg)
	if err != nil {
		return err
	}
	step("ring 0 listening: api %s, nats %s", r.APIURL(), r.NATSURL())
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }() // ends when runCtx ends, after stopping ring 1

	ep, err := ready(ctx, r, f.stateDir, database, done)
	if err == nil {
		if f.apps {
			ep.Router, ep.AppsDomain, ep.DNS = f.routerAddr, f.appsDomain, f.dnsAddr
		}
		err = writeEndpoints(f.stateDir, ep)
	}
	if err != nil {
		stop()
		<-done
		return err
	}
	epPath := filepath.Join(f.stateDir, "endpoints.json")
	step("ring 1 node %s is up; endpoints in %s", upNode, epPath)
	step("watch: nats --creds %s -s %s sub 'ops.>'", ep.OpsCreds, ep.NATS)
	step("query: curl -H \"Authorization: Bearer $(cat %s)\" %s/v1/nodes", ep.AdminTokenFile, ep.API)
	if f.apps {
		step("apps: http://%s with Host <app>.<tenant>.%s (DNS on %s)", ep.Router, ep.AppsDomain, ep.DNS)
	}
	err = <-done
	os.Remove(epPath)
	step("stopped")
	return err
}

// ready waits for the ring 1 node to be up and writes the OPS creds; the caller writes
// endpoints.json, last, since its appearance tells the world the cloud is ready.
func ready(ctx context.Context, r *ring0.Ring0, stateDir, database string, done <-chan error) (Endpoints, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, err := r.Store().GetNode(ctx, upNode)
		if err == nil && n.State == "up" {
			break
		}
		select {
		case err := <-done:
			return Endpoints{}, fmt.Errorf("ring 0 stopped while starting: %v", err)
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
	ep := Endpoints{API: r.APIURL(), NATS: r.NATSURL(), AdminTokenFile: abs(r.AdminTokenFile()),
		OpsCreds: abs(filepath.Join(stateDir, "ops.creds")), Database: database, Ring1: string(upNode)}
	if err := keys.WriteCreds(ep.OpsCreds, creds); err != nil {
		return Endpoints{}, err
	}
	return ep, nil
}

func writeEndpoints(stateDir string, ep Endpoints) error {
	b, _ := json.MarshalIndent(ep, "", "  ")
	return keys.WriteCreds(filepath.Join(stateDir, "endpoints.json"), append(b, '\n'))
}
