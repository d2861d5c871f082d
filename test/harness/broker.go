package harness

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"enjin"
	"enjin/bus"
	"enjin/bus/broker"
	"enjin/keys"
)

// Cloud is a running broker in the production configuration over a fresh trust chain.
type Cloud struct {
	Dir    string
	Broker *broker.Broker
	Chain  *keys.Chain
	URL    string
}

// StartBroker initializes a trust chain in a temporary directory and starts the embedded
// broker on a free loopback port, exactly as ring 0 does.
func StartBroker(t testing.TB) *Cloud { return StartBrokerIn(t, t.TempDir()) }

// StartBrokerIn starts the broker on an existing state directory, as a restarted ring 0 does.
func StartBrokerIn(t testing.TB, dir string) *Cloud { return StartBrokerWith(t, dir, "") }

// StartBrokerWith starts the broker on dir, with a leafnode listener at leaf if it is not "".
func StartBrokerWith(t testing.TB, dir, leaf string) *Cloud {
	t.Helper()
	b, err := broker.New(broker.Config{StateDir: dir, Port: -1, Logger: Logger(t), Leaf: leaf})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return &Cloud{Dir: dir, Broker: b, Chain: b.Chain(), URL: b.ClientURL()}
}

// Mint issues a user of account within that account's policy grant.
func (c *Cloud) Mint(t testing.TB, account string, req keys.UserRequest) *keys.Creds {
	t.Helper()
	iss, err := broker.IssuerFor(c.Chain, account)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := iss.Mint(req, time.Now())
	if err != nil {
		t.Fatalf("mint %s in %s: %v", req.Name, account, err)
	}
	return cr
}

// Connect dials the broker as creds; the connection closes at cleanup.
func (c *Cloud) Connect(t testing.TB, cr *keys.Creds, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := bus.Connect(c.URL, cr, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", cr.Name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Ring0 mints ring 0's supervisor user.
func (c *Cloud) Ring0(t testing.TB) *keys.Creds {
	return c.Mint(t, keys.RING0, keys.UserRequest{Name: "ring0", Perms: bus.Ring0Perms("ring0")})
}

// Ring0Ingest mints ring 0's observation-ingest user (a member of RING1).
func (c *Cloud) Ring0Ingest(t testing.TB) *keys.Creds {
	return c.Mint(t, keys.RING1, keys.UserRequest{Name: bus.IngestUser, Perms: bus.Ring0IngestPerms()})
}

// Ring1Node mints ring 1 node n's user and makes its attestation key.
func (c *Cloud) Ring1Node(t testing.TB, n enjin.NodeID) (*keys.Creds, *keys.Attestation) {
	cr := c.Mint(t, keys.RING1, keys.UserRequest{Name: string(n), Perms: bus.Ring1NodePerms(n), ConnTypes: bus.Ring1ConnTypes()})
	a, err := keys.NewAttestation()
	if err != nil {
		t.Fatal(err)
	}
	return cr, a
}

// Ops mints an operator's user.
func (c *Cloud) Ops(t testing.TB, name string) *keys.Creds {
	return c.Mint(t, keys.OPS, keys.UserRequest{Name: name, Perms: bus.OpsPerms(), ConnTypes: bus.ClientConnTypes()})
}

// Tenant adds tenant tn with a fresh scoped signing key (as a hosting ring 1 node would hold)
// and returns an issuer for that key.
func (c *Cloud) Tenant(t testing.TB, tn enjin.TenantID) (*keys.Issuer, nkeys.KeyPair) {
	t.Helper()
	kp, err := keys.NewScopedKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	if err := c.Broker.AddTenant(t.Context(), tn, pub); err != nil {
		t.Fatalf("add tenant %s: %v", tn, err)
	}
	a, err := c.Chain.Account(keys.TenantAccount(tn))
	if err != nil {
		t.Fatal(err)
	}
	return keys.NewScopedIssuer(kp, a.Public), kp
}

// Ring1NodeIssuer is ring 0's issuer for ring 1 node users.
func (c *Cloud) Ring1NodeIssuer(t testing.TB) *keys.Issuer {
	t.Helper()
	iss, err := broker.IssuerFor(c.Chain, keys.RING1)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}
