package ring1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/services/vmhost"
	"enjin/supervisors/libvirt"
	"enjin/supervisors/sandbox"
)

// startVMs makes the node host VMs on the apps' bridge, if libvirtd answers: the VM host, the
// relay guests reach the bus through, and what was left running adopted. Without libvirtd the
// node hosts no VMs and says so; its VM commands are refused.
func (n *Node) startVMs(ctx context.Context, nc *nats.Conn, nw *sandbox.Network, tn *tenantNetworks, ids *identities, ring0API string) (stop func()) {
	c := n.cfg.Apps
	if n.cfg.NoVMs {
		n.log.Info("hosting no VMs, as configured")
		return func() {}
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	lv, err := libvirt.Dial(dctx, libvirt.System, n.log)
	cancel()
	if err != nil {
		n.log.Warn("no libvirtd: this node hosts no VMs", "err", err)
		return func() {}
	}
	target, err := natsHostPort(n.cfg.NATSURL)
	if err != nil {
		lv.Close()
		n.log.Warn("no VMs: the bus URL", "err", err)
		return func() {}
	}
	relay := net.JoinHostPort(nw.Gateway().String(), strconv.Itoa(sandbox.GuestPort))
	ln, err := net.Listen("tcp", relay)
	if err != nil {
		lv.Close()
		n.log.Warn("no VMs: the relay", "err", err)
		return func() {}
	}
	// QEMU runs as its own user and must pass through every directory above a VM's files, which
	// a state dir under someone's home would not let it: they live in /var/lib/enjin instead,
	// named for the node and its bridge like its cgroups.
	dir := n.vmDir()
	for _, d := range []string{filepath.Dir(vmRoot), vmRoot} { // enjin's own: passable, not listable
		err := os.MkdirAll(d, 0o711)
		if err == nil {
			err = os.Chmod(d, 0o711)
		}
		if err != nil {
			n.log.Warn("vm directory", "dir", d, "err", err)
		}
	}
	if tn == nil {
		ln.Close()
		lv.Close()
		n.log.Warn("no VMs: this node carries no tenant networks")
		return func() {}
	}
	h, err := vmhost.New(vmhost.Config{Dir: dir, Node: n.cfg.Node, Libvirt: lv, Bridge: c.Bridge,
		Segments: tn.segments, Guard: tn.guard, Underlay: tn.underlay,
		Network: nw, Prefix: c.Prefix, NATS: []string{"nats://" + relay}, BusCA: n.cfg.CA, Ring0API: ring0API, Logger: n.log,
		Fetch: func(ctx context.Context, digest, part string, f *os.File) error {
			return fetchImage(ctx, nc, digest, part, f)
		},
		Mint: ids.mintVM,
		Revoke: func(t enjin.TenantID, user string) {
			if n.revokes != nil {
				n.revokes.add(context.Background(), nc, bus.RevokeRequest{Tenant: t, User: user})
			}
		}})
	if err != nil {
		ln.Close()
		lv.Close()
		n.log.Warn("no VMs", "err", err)
		return func() {}
	}
	if err := h.Restore(); err != nil {
		n.log.Error("vms not adopted", "err", err)
	}
	rctx, cancelRelay := context.WithCancel(context.Background())
	var relays sync.WaitGroup
	relays.Go(func() { // ends when stop cancels rctx
		if err := vmhost.ServeRelay(rctx, ln, target); err != nil {
			n.log.Error("relay", "err", err)
		}
	})
	n.vms.Store(h)
	n.log.Info("hosting VMs", "relay", relay, "kvm", libvirt.HasKVM(), "underlay", tn.underlay, "ring1_hosts", ring0API != "")
	return func() {
		n.vms.Store(nil)
		cancelRelay()
		relays.Wait()
		lv.Close() // the VMs keep running, their segments and guards stay: a restarted node adopts them
	}
}

// hostRelay listens on the gateway's host port for the VMs this node runs as ring 1 hosts and
// the system tenant's sandboxes, to pass them through to ring 0's API (host:port); nil if the
// node knows no ring 0 API. The bridge's firewall lets only those reach it.
func (n *Node) hostRelay(nw *sandbox.Network) (ln net.Listener, ring0, api string) {
	if n.cfg.Ring0API == "" {
		return nil, "", ""
	}
	u, err := url.Parse(n.cfg.Ring0API)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		n.log.Warn("no relay to ring 0's API (for ring 1 host VMs and the system tenant): not an http(s):// URL", "ring0", n.cfg.Ring0API)
		return nil, "", ""
	}
	ring0 = u.Host
	if u.Port() == "" {
		ring0 = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	addr := net.JoinHostPort(nw.Gateway().String(), strconv.Itoa(sandbox.HostPort))
	if ln, err = net.Listen("tcp", addr); err != nil {
		n.log.Warn("no relay to ring 0's API (for ring 1 host VMs and the system tenant)", "err", err)
		return nil, "", ""
	}
	return ln, ring0, u.Scheme + "://" + addr // passed through as it is: TLS ends at ring 0
}

// vmRoot holds the VM files of every ring 1 node on the host.
const vmRoot = "/var/lib/enjin/vms"

// vmDir holds this node's VM files, named for the node and its bridge like its cgroups.
func (n *Node) vmDir() string { return filepath.Join(vmRoot, string(n.cfg.Node)+"-"+n.cfg.Apps.Bridge) }

func natsHostPort(u string) (string, error) {
	first, _, _ := strings.Cut(u, ",")
	p, err := url.Parse(first)
	if err != nil || p.Host == "" {
		return "", fmt.Errorf("bus url %q", u)
	}
	if p.Port() == "" {
		return net.JoinHostPort(p.Hostname(), "4222"), nil
	}
	return p.Host, nil
}

// fetchImage writes part of image digest to f, from ring 0, a piece at a time.
func fetchImage(ctx context.Context, nc *nats.Conn, digest, part string, f *os.File) error {
	var off int64
	for {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		rep, err := bus.Request[bus.ImageRequest, bus.ImageReply](rctx, nc, bus.R1Ring0(bus.ServiceImage),
			bus.ImageRequest{Digest: digest, Part: part, Offset: off, Length: bus.MaxImageChunk})
		cancel()
		if err != nil {
			return err
		}
		if len(rep.Data) == 0 && off < rep.Size {
			return errors.New("ring 0 sent an empty piece")
		}
		if _, err := f.Write(rep.Data); err != nil {
			return err
		}
		off += int64(len(rep.Data))
		if off >= rep.Size {
			return nil
		}
	}
}

// mintVM makes a VM's bus identity: a user of its tenant's account, minted with the scoped
// key this node holds for the tenant, named for the VM; and an attestation key.
func (ids *identities) mintVM(ctx context.Context, t enjin.TenantID, id enjin.NodeID) (vmhost.Identity, error) {
	dir := filepath.Join(ids.n.cfg.Dir, "tenants")
	kp, err := keys.EnsureScopedKey(filepath.Join(dir, string(t)+".seed"))
	if err != nil {
		return vmhost.Identity{}, err
	}
	acct, err := os.ReadFile(filepath.Join(dir, string(t)+".account"))
	if err != nil || !nkeys.IsValidPublicAccountKey(strings.TrimSpace(string(acct))) {
		return vmhost.Identity{}, fmt.Errorf("tenant %s: account unknown here: %v", t, err)
	}
	c, err := keys.NewScopedIssuer(kp, strings.TrimSpace(string(acct))).Mint(keys.UserRequest{Name: string(id)}, time.Now())
	if err != nil {
		return vmhost.Identity{}, err
	}
	file, err := c.File()
	if err != nil {
		return vmhost.Identity{}, err
	}
	att, err := keys.NewAttestation()
	if err != nil {
		return vmhost.Identity{}, err
	}
	return vmhost.Identity{Creds: string(file), UserPub: c.PublicKey, AttestSeed: att.SeedText(), AttestPub: att.Public()}, nil
}

// VM commands. Each is carried out on a goroutine of its own and answered from there, so a
// first start (an image fetched, a guest booted) does not hold up the node's other commands.
func (n *Node) vmCommands() map[string]func(*nats.Msg) (any, error) {
	later := func(fn func(ctx context.Context, h *vmhost.Host, m *nats.Msg) (any, error)) func(*nats.Msg) (any, error) {
		return func(m *nats.Msg) (any, error) {
			h := n.vms.Load()
			if h == nil {
				return nil, fmt.Errorf("ring1 %s: this node hosts no VMs", n.cfg.Node)
			}
			go func() { // ends when the command is done; bounded by its own deadline
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				resp, err := fn(ctx, h, m)
				bus.Reply(m, resp, err)
			}()
			return nil, bus.ErrReplyLater
		}
	}
	ref := func(m *nats.Msg) (bus.VMRef, error) {
		var r bus.VMRef
		return r, json.Unmarshal(m.Data, &r)
	}
	cmds := map[string]func(*nats.Msg) (any, error){
		bus.VerbVMApply: later(func(ctx context.Context, h *vmhost.Host, m *nats.Msg) (any, error) {
			var req enjin.VMRequest
			if err := json.Unmarshal(m.Data, &req); err != nil {
				return nil, err
			}
			return h.Apply(ctx, req)
		}),
		bus.VerbVMDestroy: later(func(ctx context.Context, h *vmhost.Host, m *nats.Msg) (any, error) {
			r, err := ref(m)
			if err != nil {
				return nil, err
			}
			return h.Destroy(ctx, r.Tenant, r.ID)
		}),
		bus.VerbVMReboot: later(func(ctx context.Context, h *vmhost.Host, m *nats.Msg) (any, error) {
			r, err := ref(m)
			if err != nil {
				return nil, err
			}
			return h.Reboot(ctx, r.Tenant, r.ID)
		}),
		bus.VerbVMConsole: later(func(ctx context.Context, h *vmhost.Host, m *nats.Msg) (any, error) {
			r, err := ref(m)
			if err != nil {
				return nil, err
			}
			text, err := h.Console(r.Tenant, r.ID)
			return bus.ConsoleReply{Text: text}, err
		}),
		bus.VerbVolumeApply: later(func(ctx context.Context, h *vmhost.Host, m *nats.Msg) (any, error) {
			var v bus.VolumeRequest
			if err := json.Unmarshal(m.Data, &v); err != nil {
				return nil, err
			}
			return struct{}{}, h.ApplyVolume(ctx, v.ID, v.SizeGB)
		}),
		bus.VerbVolumeDelete: later(func(ctx context.Context, h *vmhost.Host, m *nats.Msg) (any, error) {
			var v bus.VolumeRequest
			if err := json.Unmarshal(m.Data, &v); err != nil {
				return nil, err
			}
			return struct{}{}, h.DeleteVolume(v.ID)
		}),
	}
	out := map[string]func(*nats.Msg) (any, error){}
	for verb, fn := range cmds {
		out[bus.Ring1Cmd(n.cfg.Node, verb)] = fn
	}
	return out
}
