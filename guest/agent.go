// Package guest is the inside of an enjin VM: the metadata the host hands the VM through
// QEMU's fw_cfg (Meta: who the VM is, its addresses, its bus credential and attestation key)
// and the agent `enjin guest` runs there, which makes the VM a ring 2 node like an app
// instance: it connects to the bus as the VM's own user of its tenant's account and publishes
// a signed heartbeat (enjin.Observation, sealed with the VM's attestation key) on
// ring2.<user key>.obs every period, reconnecting for as long as it runs.
//
// Heartbeats are published, not sent as requests: nothing on ring 1 acknowledges ring 2
// observations yet. Like every observation on the bus they are at most once; one made while
// the connection is down is skipped rather than queued, since it would arrive stale.
//
// guest imports bus, keys and enjin (the vocabulary); cmd/enjin (`enjin guest`), services/vmhost (which writes
// the metadata guest reads) and tests import it.
package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/keys"
)

// Config configures an Agent.
type Config struct {
	Meta   *Meta        // required, with NATS URLs, a credential and an attestation key
	Logger *slog.Logger // nil discards
	Proc   fs.FS        // the kernel's /proc the figures come from; nil means the real one
}

// Agent is a VM's ring 2 node on the bus. Run it once.
type Agent struct {
	meta   *Meta
	creds  *keys.Creds
	signer *bus.Signer
	log    *slog.Logger
	stats  stats
	sent   uint64
}

// New checks that the metadata lets the VM speak on the bus and returns its agent.
func New(cfg Config) (*Agent, error) {
	m := cfg.Meta
	switch {
	case m == nil:
		return nil, errors.New("guest: no metadata")
	case len(m.NATS) == 0:
		return nil, errors.New("guest: metadata has no nats URL")
	case m.Creds == "":
		return nil, errors.New("guest: metadata has no creds")
	case m.Attest == "":
		return nil, errors.New("guest: metadata has no attest_seed")
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("guest: metadata: %w", err)
	}
	creds, err := keys.ParseCreds([]byte(m.Creds))
	if err != nil {
		return nil, fmt.Errorf("guest: creds: %w", err)
	}
	att, err := keys.ParseAttestation([]byte(m.Attest))
	if err != nil {
		return nil, fmt.Errorf("guest: attest_seed: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	proc := cfg.Proc
	if proc == nil {
		proc = os.DirFS("/proc")
	}
	return &Agent{
		meta:   m,
		creds:  creds,
		signer: bus.NewSigner(m.Node, att),
		log:    log.With("ring", int(enjin.Ring2), "node", m.Node, "tenant", m.Tenant),
		stats:  stats{proc: proc},
	}, nil
}

// Subject is where the agent publishes its heartbeats: ring2.<its user key>.obs, the only
// observation subject its credential allows.
func (a *Agent) Subject() string { return bus.Ring2Obs(a.creds.PublicKey) }

// Run heartbeats until ctx ends, then publishes a last observation saying the node is
// stopping and returns nil. It returns an error only if the bus refuses the credential for
// good (revoked or expired): retrying could not help.
func (a *Agent) Run(ctx context.Context) error {
	ready := make(chan struct{}, 1) // (re)connected: heartbeat now rather than at the next tick
	closed := make(chan struct{})
	final := make(chan error, 1) // why bus.Connect closed the connection: revoked or expired
	poke := func(*nats.Conn) {
		select {
		case ready <- struct{}{}:
		default:
		}
	}
	tlsOpt := func(*nats.Options) error { return nil }
	if a.meta.CA != "" { // the bus speaks TLS beyond loopback: checked by ring 0's CA
		o, err := bus.TrustCA([]byte(a.meta.CA))
		if err != nil {
			return err
		}
		tlsOpt = o
	}
	nc, err := bus.Connect(strings.Join(a.meta.NATS, ","), a.creds, tlsOpt,
		// A ring 2 user may read replies only under its own key's inbox.
		nats.CustomInboxPrefix(bus.Inbox(a.creds.PublicKey)),
		// Keep trying whatever the bus says, even "authorization violation" (the tenant's
		// account may not have reached the broker yet); bus.Connect still gives up on a
		// credential that is revoked or expired.
		nats.RetryOnFailedConnect(true),
		nats.IgnoreAuthErrorAbort(),
		nats.ReconnectWait(time.Second),
		nats.ConnectHandler(poke),
		nats.ReconnectHandler(func(c *nats.Conn) {
			a.log.Info("bus: reconnected", "url", c.ConnectedUrlRedacted())
			poke(c)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				a.log.Warn("bus: disconnected; reconnecting", "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if bus.Terminal(err) {
				select {
				case final <- err:
				default:
				}
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
	)
	if err != nil {
		return err
	}
	a.log.Info("heartbeating", "subject", a.Subject(), "period", a.meta.Period(), "nats", a.meta.NATS)
	t := time.NewTicker(a.meta.Period())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if a.beat(nc, enjin.StateStopping) {
				_ = nc.FlushTimeout(2 * time.Second) // best effort: the machine is going down
			}
			nc.Close()
			return nil
		case <-closed:
			select {
			case err := <-final:
				return fmt.Errorf("guest: the bus refuses the VM's credential for good: %w", err)
			default:
				return errors.New("guest: the connection to the bus closed")
			}
		case <-ready:
		case <-t.C:
		}
		a.beat(nc, enjin.StateUp)
	}
}

// beat publishes one signed observation if connected, and reports whether it did.
func (a *Agent) beat(nc *nats.Conn, state enjin.NodeState) bool {
	if !nc.IsConnected() {
		return false
	}
	sl, err := bus.PublishObservation(nc, a.signer, a.Subject(), a.observe(time.Now(), state))
	if err != nil {
		a.log.Warn("heartbeat not published", "err", err)
		return false
	}
	if a.sent++; a.sent == 1 {
		a.log.Info("first heartbeat published", "seq", sl.Seq)
	}
	return true
}

// observe is what the VM says about itself at now.
func (a *Agent) observe(now time.Time, state enjin.NodeState) enjin.Observation {
	return enjin.Observation{
		Node:      a.meta.Node,
		Ring:      enjin.Ring2,
		State:     state,
		Time:      now,
		CPU:       a.stats.cpu(),
		MemBytes:  memUsed(a.stats.proc),
		Load1:     firstFloat(a.stats.proc, "loadavg"),
		UptimeSec: firstFloat(a.stats.proc, "uptime"),
	}
}
