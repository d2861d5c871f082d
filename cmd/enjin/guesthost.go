package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"enjin"
	"enjin/guest"
	"enjin/rings/ring1"
)

// guestState is where a VM made a ring 1 host keeps its keys and apps (its root is a tmpfs).
const guestState = "/var/lib/enjin"

// joinPatience is how long a host VM keeps trying to reach ring 0 to join before it gives up.
const joinPatience = 2 * time.Minute

// guestHost runs a VM that the metadata makes a ring 1 host (the libvirt strategy): it joins
// ring 0 with its one-time token, through the relay of the node running it, then runs as a
// ring 1 node hosting apps on its own address — its app API and router there, its instances
// on a bridge of its own in the block the metadata gives. It reaches the bus only through
// that node's relay, whatever broker URL ring 0 names.
func guestHost(c *cobra.Command, m *guest.Meta, log *slog.Logger) error {
	if len(m.Addresses) == 0 || len(m.NATS) == 0 {
		return errors.New("guest: a host VM needs an address and a bus URL in its metadata")
	}
	self := m.Addresses[0].Addr()
	dir := filepath.Join(guestState, "ring1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	var cfg ring1.Config
	var err error
	if fileExists(filepath.Join(dir, "node.json")) { // enjin guest ran before in this boot
		cfg, err = loadJoined(dir)
	} else {
		cfg, err = joinPatiently(c, m, dir, log)
	}
	if err != nil {
		return err
	}
	cfg.NATSURL, cfg.NATSServers = strings.Join(m.NATS, ","), nil
	cfg.Heartbeat, cfg.Logger, cfg.NoVMs, cfg.Underlay = m.Period(), log, true, self

	o := enjin.DefaultRing1Options()
	o.AppsDir = filepath.Join(guestState, "apps")
	o.AppsAPI = net.JoinHostPort(self.String(), "7071")
	o.Router = net.JoinHostPort(self.String(), "7080")
	o.RouterTLS = net.JoinHostPort(self.String(), "7443")
	o.Prefix = m.Host.Apps.String()
	return runNode(c, cfg, o)
}

// joinPatiently redeems the host VM's token, trying again while ring 0 cannot be reached (the
// network may be coming up); a refusal is final — the token is one-time.
func joinPatiently(c *cobra.Command, m *guest.Meta, dir string, log *slog.Logger) (ring1.Config, error) {
	ctx, cancel := context.WithTimeout(c.Context(), joinPatience)
	defer cancel()
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		actx, stop := context.WithTimeout(ctx, 15*time.Second) // a relay that answers nothing
		cfg, err := joinNow(actx, c.OutOrStdout(), m.Host.Ring0, m.Host.Token, dir)
		stop()
		if err == nil {
			return cfg, nil
		}
		if errors.Is(err, ring1.ErrJoinRefused) || ctx.Err() != nil {
			return cfg, err
		}
		log.Warn("join: ring 0 not reached yet; trying again", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return cfg, err
		case <-time.After(wait):
		}
	}
}
