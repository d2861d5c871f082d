package guest_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/bus"
	"enjin/bus/broker"
	"enjin/guest"
	"enjin/keys"
	"enjin/test/harness"
)

// vm is a VM's identity as a hosting ring 1 node makes it: a user of the tenant's account
// minted with the node's scoped key, and an attestation key.
type vm struct {
	creds  *keys.Creds
	attest *keys.Attestation
}

func newVM(t *testing.T, c *harness.Cloud, tenant enjin.TenantID, node enjin.NodeID) vm {
	t.Helper()
	iss, _ := c.Tenant(t, tenant)
	cr, err := iss.Mint(keys.UserRequest{Name: string(node)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	att, err := keys.NewAttestation()
	if err != nil {
		t.Fatal(err)
	}
	return vm{cr, att}
}

// meta is the VM's metadata as the host would hand it over: marshalled and parsed again.
func (v vm) meta(t *testing.T, tenant enjin.TenantID, url string, hb time.Duration) *guest.Meta {
	t.Helper()
	file, err := v.creds.File()
	if err != nil {
		t.Fatal(err)
	}
	m := guest.Meta{Node: enjin.NodeID(v.creds.Name), Tenant: tenant, NATS: []string{url}, Creds: string(file),
		Attest: v.attest.SeedText(), Heartbeat: guest.Duration(hb)}
	b, _ := json.Marshal(m)
	parsed, err := guest.ParseMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

// ring1Sub subscribes as a ring 1 node to tenant's ring 2 observations.
func ring1Sub(t *testing.T, c *harness.Cloud, tenant enjin.TenantID) chan *nats.Msg {
	t.Helper()
	perms := bus.Ring1NodePerms("host-a")
	perms.SubAllow = append(perms.SubAllow, bus.R1FromTenantObs(tenant))
	r1 := c.Mint(t, keys.RING1, keys.UserRequest{Name: "host-a", Perms: perms})
	nc := c.Connect(t, r1)
	msgs := make(chan *nats.Msg, 256)
	if _, err := nc.ChanSubscribe(bus.R1FromTenantObs(tenant), msgs); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return msgs
}

var fakeProc = fstest.MapFS{
	"stat":    {Data: []byte("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 100 0 50 800 50 0 0 0 0 0\n")},
	"meminfo": {Data: []byte("MemTotal:  262144 kB\nMemFree: 100000 kB\nMemAvailable:  200000 kB\n")},
	"uptime":  {Data: []byte("12.50 20.00\n")},
	"loadavg": {Data: []byte("0.25 0.10 0.05 1/50 99\n")},
}

// receive waits for the next observation, verifies it as ring 1 would and returns it.
func receive(t *testing.T, msgs chan *nats.Msg, v *bus.Verifier, node enjin.NodeID, user string) enjin.Observation {
	t.Helper()
	select {
	case m := <-msgs:
		if want := "r1.from.acme." + user + ".obs"; m.Subject != want {
			t.Fatalf("subject %s, want %s", m.Subject, want)
		}
		if _, err := v.Verify(node, m.Header, m.Data, time.Now()); err != nil {
			t.Fatalf("heartbeat does not verify: %v", err)
		}
		var obs enjin.Observation
		if err := json.Unmarshal(m.Data, &obs); err != nil {
			t.Fatal(err)
		}
		return obs
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat within 10s")
		return enjin.Observation{}
	}
}

// TestHeartbeatRoundTrip runs the agent against the production broker: ring 1 receives its
// heartbeats on the tenant's import, each verifies against the VM's attestation key, and the
// last one, when the agent stops, says the node is stopping.
func TestHeartbeatRoundTrip(t *testing.T) {
	c := harness.StartBroker(t)
	v := newVM(t, c, "acme", "vm-1")
	msgs := ring1Sub(t, c, "acme")
	a, err := guest.New(guest.Config{Meta: v.meta(t, "acme", c.URL, 100*time.Millisecond), Logger: harness.Logger(t), Proc: fakeProc})
	if err != nil {
		t.Fatal(err)
	}
	if want := bus.Ring2Obs(v.creds.PublicKey); a.Subject() != want {
		t.Errorf("subject %s, want %s", a.Subject(), want)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }() // ends when stop is called

	ver := bus.NewVerifier(0)
	if err := ver.Register("vm-1", v.attest.Public(), 0); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		obs := receive(t, msgs, ver, "vm-1", v.creds.PublicKey)
		if obs.Node != "vm-1" || obs.Ring != enjin.Ring2 || obs.State != enjin.StateUp ||
			obs.MemBytes != (262144-200000)<<10 || obs.UptimeSec != 12.5 || obs.Load1 != 0.25 ||
			time.Since(obs.Time) > 10*time.Second {
			t.Fatalf("got %+v", obs)
		}
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	for obs := receive(t, msgs, ver, "vm-1", v.creds.PublicKey); obs.State != enjin.StateStopping; {
		obs = receive(t, msgs, ver, "vm-1", v.creds.PublicKey)
	}
}

// TestHeartbeatsOnceTheBusIsThere starts the agent before the broker listens, as a VM may
// boot before its network or ring 0 is up: it keeps trying and heartbeats at once when it
// gets through.
func TestHeartbeatsOnceTheBusIsThere(t *testing.T) {
	dir, port := t.TempDir(), harness.FreePort(t)
	start := func() *harness.Cloud { // the same keys and tenants each time, on the same port
		b, err := broker.New(broker.Config{StateDir: dir, Port: port, Logger: harness.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return &harness.Cloud{Dir: dir, Broker: b, Chain: b.Chain(), URL: b.ClientURL()}
	}
	c := start()
	v := newVM(t, c, "acme", "vm-1")
	m := v.meta(t, "acme", c.URL, time.Minute) // so only the connection makes a heartbeat soon
	c.Broker.Close()

	a, err := guest.New(guest.Config{Meta: m, Logger: harness.Logger(t), Proc: fakeProc})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()  // ends at stop
	time.Sleep(1500 * time.Millisecond) // the agent tries, and is refused, a few times

	c = start()
	msgs := ring1Sub(t, c, "acme")
	ver := bus.NewVerifier(0)
	ver.Register("vm-1", v.attest.Public(), 0)
	receive(t, msgs, ver, "vm-1", v.creds.PublicKey)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestRevokedStops revokes the VM's user while it heartbeats: the agent gives up with an error
// instead of retrying a credential that can never work again.
func TestRevokedStops(t *testing.T) {
	c := harness.StartBroker(t)
	v := newVM(t, c, "acme", "vm-1")
	msgs := ring1Sub(t, c, "acme")
	a, err := guest.New(guest.Config{Meta: v.meta(t, "acme", c.URL, 100*time.Millisecond), Logger: harness.Logger(t), Proc: fakeProc})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(t.Context()) }() // ends on revocation, or with the test
	ver := bus.NewVerifier(0)
	ver.Register("vm-1", v.attest.Public(), 0)
	receive(t, msgs, ver, "vm-1", v.creds.PublicKey)
	if err := c.Broker.Revoke(t.Context(), keys.TenantAccount("acme"), v.creds.PublicKey); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("Run: got %v, want an error saying the credential was revoked", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run went on with a revoked credential")
	}
}

// TestUnknownAccountKeepsTrying gives the agent a credential of an account the broker does not
// know (yet): the agent keeps trying instead of giving up after two refusals.
func TestUnknownAccountKeepsTrying(t *testing.T) {
	c := harness.StartBroker(t)
	att, _ := keys.NewAttestation()
	m := &guest.Meta{Node: "vm-1", Tenant: "acme", NATS: []string{c.URL}, Creds: credsFor(t, "vm-1"), Attest: att.SeedText()}
	a, err := guest.New(guest.Config{Meta: m, Logger: harness.Logger(t), Proc: fakeProc})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }() // ends at stop
	select {
	case err := <-done:
		t.Fatalf("Run gave up: %v", err)
	case <-time.After(3500 * time.Millisecond): // three refusals at least
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
