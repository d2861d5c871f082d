package ring0

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"

	"enjin"
	"enjin/bus"
	"enjin/bus/broker"
	"enjin/keys"
	"enjin/services/api"
	"enjin/services/inventory"
	"enjin/supervisors/process"
)

// nodeDir is where ring 0 keeps the keys of a ring 1 node it runs on this machine.
func (r *Ring0) nodeDir(id enjin.NodeID) string {
	return filepath.Join(r.cfg.StateDir, "nodes", string(id))
}

// launch registers a ring 1 node's keys and starts it as a supervised child process. Before
// every (re)start the node's credential is re-issued, so a node restarted after hours never
// starts with an expired one.
func (r *Ring0) launch(ctx context.Context, wg *sync.WaitGroup, spec Ring1Spec) error {
	if r.cfg.Executable == "" {
		return errors.New("ring0: no executable to run ring 1 nodes with")
	}
	dir := r.nodeDir(spec.ID)
	user, err := keys.EnsureUserKey(filepath.Join(dir, "user.seed"))
	if err != nil {
		return err
	}
	att, err := keys.EnsureAttestation(filepath.Join(dir, "attest.seed"))
	if err != nil {
		return err
	}
	userPub, _ := user.PublicKey()
	n, err := r.store.RegisterNode(ctx, inventory.Node{ID: spec.ID, Ring: enjin.Ring1, Label: spec.Label,
		Supervision: "process", Observation: "self", AuthPub: userPub, AttestPub: att.Public()})
	if err != nil {
		return err
	}
	if err := r.verify.Register(spec.ID, att.Public(), n.LastSeq); err != nil {
		return err
	}
	r.keysChanged(spec.ID)
	seed, _ := user.Seed()
	credsPath := filepath.Join(dir, "node.creds")
	renew := func(ctx context.Context) error {
		tok, err := r.mintRing1(ctx, spec.ID, userPub)
		if err != nil {
			return err
		}
		b, err := jwt.FormatUserConfig(tok, seed)
		if err != nil {
			return err
		}
		return keys.WriteCreds(credsPath, b)
	}
	logPath := filepath.Join(dir, "ring1.log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("ring0: %w", err)
	}
	o := enjin.DefaultRing1Options()
	o.Node, o.NATS, o.Creds, o.Attest = string(spec.ID), r.NATSURL(), credsPath, filepath.Join(dir, "attest.seed")
	o.Heartbeat, o.Dir, o.Ring0, o.Netns = r.cfg.Heartbeat, dir, r.APIURL(), spec.Netns
	appsAddr := spec.Addr
	if r.cfg.Apps == nil {
		appsAddr = netip.Addr{}
	}
	if err := r.nodeTLS(spec.ID, dir, appsAddr, &o); err != nil {
		return err
	}
	if r.cfg.Apps != nil {
		if err := r.appsOptions(spec, dir, &o); err != nil {
			return err
		}
	}
	// Detached: the node keeps routing and serving apps if ring 0 dies, and the ring 0 that
	// starts next adopts it through its PID file instead of starting a second copy.
	sup := process.New(process.Spec{
		Name: string(spec.ID), Path: r.cfg.Executable, Dir: dir, Stdout: log, Stderr: log, BeforeStart: renew, Args: o.Args(),
		Detach: true, PIDFile: filepath.Join(dir, "ring1.pid"), LogFile: logPath, GiveUp: ring1StartAttempts,
	}, ring1Backoff, 35*time.Second, r.log.With("node", spec.ID))
	r.mu.Lock()
	r.sups[spec.ID] = sup
	r.mu.Unlock()
	wg.Go(func() { r.watchStart(ctx, spec.ID, n.LastSeq, sup) }) // ends once the node is heard from, or with ctx
	wg.Go(func() {                                               // ends when ctx ends and the child has stopped, or when it cannot start
		defer log.Close()
		if err := sup.Run(ctx); err != nil {
			r.log.Error("ring 1 node failed to start", "node", spec.ID, "err", err)
			r.fail(fmt.Errorf("ring 1 node %s: %w", spec.ID, err))
		}
	})
	return nil
}

// watchStart tells sup the node got going once ring 0 stores a heartbeat of it (a sequence
// number above seq): a node that has served is restarted forever, never given up on.
func (r *Ring0) watchStart(ctx context.Context, id enjin.NodeID, seq uint64, sup *process.Supervisor) {
	t := time.NewTicker(r.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := r.store.GetNode(ctx, id); err == nil && n.LastSeq > seq {
			sup.MarkStable()
			return
		}
	}
}

// ring1Backoff restarts a ring 1 node that died soon: every tenant it hosts waits for it.
var ring1Backoff = process.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Reset: 30 * time.Second}

// ring1StartAttempts is how often a ring 1 node this ring 0 runs may fail before it ever got
// going, before ring 0 gives up and stops with the node's last words.
const ring1StartAttempts = 5

// Supervisor returns the supervisor of a ring 1 node ring 0 runs here (tests kill nodes
// through it).
func (r *Ring0) Supervisor(id enjin.NodeID) *process.Supervisor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sups[id]
}

// mintRing1 issues node's RING1 credential for user key userPub and records it.
func (r *Ring0) mintRing1(ctx context.Context, node enjin.NodeID, userPub string) (string, error) {
	iss, err := broker.IssuerFor(r.broker.Chain(), keys.RING1)
	if err != nil {
		return "", err
	}
	now := time.Now()
	var exp time.Time
	if r.cfg.CredsTTL > 0 {
		exp = now.Add(r.cfg.CredsTTL)
	}
	c, err := iss.Mint(keys.UserRequest{Name: string(node), PublicKey: userPub, Perms: bus.Ring1NodePerms(node), Expires: exp,
		ConnTypes: bus.Ring1ConnTypes()}, now)
	if err != nil {
		return "", err
	}
	if err := r.record(ctx, keys.RING1, c, string(node)); err != nil {
		return "", err
	}
	return c.JWT, nil
}

func (r *Ring0) record(ctx context.Context, account string, c *keys.Creds, node string) error {
	uc, err := jwt.DecodeUserClaims(c.JWT)
	if err != nil {
		return err
	}
	return r.store.RecordCredential(ctx, inventory.Credential{JTI: uc.ID, Account: account, Subject: c.PublicKey,
		Node: node, IssuedAt: time.Unix(uc.IssuedAt, 0), ExpiresAt: time.Unix(uc.Expires, 0)})
}

// Join redeems a one-time join token of an external ring 1 node: it records the node's keys,
// registers its attestation key and issues its credential. A node joining again with new
// keys loses its earlier users: they are revoked, so the old credential's connection closes
// and cannot come back.
func (r *Ring0) Join(ctx context.Context, token, userKey, attestKey, appsKey string) (api.JoinResult, error) {
	r.nodeMu.Lock()
	defer r.nodeMu.Unlock()
	if appsKey != "" { // checked before the token is used up
		if _, err := keys.ParseNodeKey([]byte(appsKey)); err != nil {
			return api.JoinResult{}, fmt.Errorf("%w: %v", api.ErrBadAppsKey, err)
		}
	}
	n, err := r.store.RedeemJoinToken(ctx, token, userKey, attestKey)
	if err != nil {
		return api.JoinResult{}, err
	}
	if err := r.verify.Register(n.ID, attestKey, n.LastSeq); err != nil {
		return api.JoinResult{}, err
	}
	r.keysChanged(n.ID)
	if _, err := r.revokeNode(ctx, n.ID, "", userKey); err != nil {
		return api.JoinResult{}, err
	}
	tok, err := r.mintRing1(ctx, n.ID, userKey)
	if err != nil {
		return api.JoinResult{}, err
	}
	// The bearer ring 0 presents to the node's app API, should it host apps: new with every
	// join, so a machine that joined before as this node holds none that works.
	appsTok, err := newToken(filepath.Join(r.nodeDir(n.ID), "apps.token"))
	if err != nil {
		return api.JoinResult{}, err
	}
	if err := r.shareAppsToken(ctx, n.ID, appsTok); err != nil {
		return api.JoinResult{}, err
	}
	r.log.Info("ring 1 node joined", "node", n.ID)
	res := api.JoinResult{Node: n.ID, NATS: r.NATSURL(), JWT: tok, AppsToken: appsTok, CA: string(r.ca.PEM)}
	if appsKey != "" {
		cert, err := r.ca.SignKey([]byte(appsKey), []string{keys.NodeName(string(n.ID))})
		if err != nil {
			return api.JoinResult{}, err
		}
		res.AppsCert = string(cert)
	}
	if urls := r.broker.ClientURLs(); len(urls) > 1 {
		res.Servers = urls
	}
	return res, nil
}

// OpsCreds issues a credential for an operator watching ops.> with the nats CLI.
func (r *Ring0) OpsCreds(ctx context.Context, name string) ([]byte, error) {
	iss, err := broker.IssuerFor(r.broker.Chain(), keys.OPS)
	if err != nil {
		return nil, err
	}
	c, err := iss.Mint(keys.UserRequest{Name: name, Perms: bus.OpsPerms(), ConnTypes: bus.ClientConnTypes()}, time.Now())
	if err != nil {
		return nil, err
	}
	if err := r.record(ctx, keys.OPS, c, ""); err != nil {
		return nil, err
	}
	return c.File()
}

// ensureToken creates the admin token file (0600) unless it exists.
func ensureToken(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ring0: %w", err)
	}
	_, err := newToken(path)
	return err
}

// newToken writes a new random bearer token to path (0600, its directory made 0700) and
// returns it.
func newToken(path string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("ring0: %w", err)
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	return tok, keys.WriteCreds(path, []byte(tok+"\n"))
}
