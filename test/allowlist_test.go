package test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin/keys"
	"enjin/test/harness"
)

// attacker is one identity trying everything outside its grant.
type attacker struct {
	name    string
	account string
	creds   *keys.Creds
	pub     []string // subjects outside its publish grant
	sub     []string // subjects outside its subscribe grant
}

// violations counts the permission violations a connection is told about, by kind.
type violations struct {
	mu    sync.Mutex
	pub   map[string]int // subject → count
	sub   map[string]int
	other []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := err.Error()
	switch {
	case strings.Contains(s, "Permissions Violation for Publish to"):
		v.pub[quoted(s)]++
	case strings.Contains(s, "Permissions Violation for Subscription to"):
		v.sub[quoted(s)]++
	default:
		v.other = append(v.other, s)
	}
}

func (v *violations) total() (pub, sub int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, n := range v.pub {
		pub += n
	}
	for _, n := range v.sub {
		sub += n
	}
	return pub, sub
}

func quoted(s string) string {
	i := strings.IndexByte(s, '"')
	j := strings.IndexByte(s[i+1:], '"')
	if i < 0 || j < 0 {
		return s
	}
	return s[i+1 : i+1+j]
}

// concrete turns a subscription pattern into a subject a bait message can be published on.
func concrete(p string) string {
	p = strings.ReplaceAll(p, "*", "x")
	return strings.ReplaceAll(p, ">", "x.y")
}

// TestAllowListsHoldOnEveryVerb has each identity — ring 0 supervisor, ring 1 node, ring 0's
// ingest user, OPS user and a tenant user minted by a scoped key — publish, subscribe,
// queue-subscribe and request outside its grant. Every attempt must be refused with a permissions violation and nothing
// may be delivered: a sink with full rights in every account counts what arrives.
func TestAllowListsHoldOnEveryVerb(t *testing.T) {
	c := harness.StartBroker(t)
	acme, _ := c.Tenant(t, "acme")
	globex, _ := c.Tenant(t, "globex")
	web1, err := acme.Mint(keys.UserRequest{Name: "web-1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	web2, _ := acme.Mint(keys.UserRequest{Name: "web-2"}, time.Now())
	gweb, _ := globex.Mint(keys.UserRequest{Name: "web-1"}, time.Now())
	k, k2, kg := web1.PublicKey, web2.PublicKey, gweb.PublicKey
	r1, _ := c.Ring1Node(t, "n1")

	common := func(extra ...string) []string {
		return append([]string{"$SYS.REQ.CLAIMS.UPDATE", "$SYS.REQ.SERVER.PING", "$SYS.REQ.ACCOUNT.PING.CONNZ",
			"$JS.API.INFO", "$JS.API.STREAM.CREATE.s", "*", ">", "x"}, extra...)
	}
	commonSub := func(extra ...string) []string {
		return append([]string{"$SYS.>", "$SYS.REQ.>", "$JS.API.>", "*", ">", "_INBOX.>", "*.>"}, extra...)
	}
	attackers := []attacker{
		{name: "ring0", account: keys.RING0, creds: c.Ring0(t),
			pub: common("ring1.n1.obs", "ring1.n1.cmd.ping", "r0.from.ring1.n1.obs", "ring0.api.revoke",
				"ops.ring1.n1.obs", "r1.ring0.revoke", "_INBOX.n1.x", "ring2."+k+".obs", "r0.to.ring1",
				"r0.to.ring1.n1.obs", "r0.to.ring2.x.cmd.ping"),
			sub: commonSub("ring1.n1.cmd.>", "ring1.>", "r0.to.ring1.n1.cmd.ping", "events.>", "_INBOX.n1.>",
				"ops.>", "r0.>", "r0.from.>", "r0.from.ring1.*.cmd.>", "ring2.>")},
		{name: "ring1-node", account: keys.RING1, creds: r1,
			pub: common("ring1.n2.obs", "ring1.n1.cmd.ping", "ring1.n2.cmd.ping", "ring1.*.obs",
				"r0.to.ring1.n2.cmd.ping", "r0.from.ring1.n2.obs", "ring0.api.revoke", "ops.ring1.n2.obs",
				"r1.from.acme."+k+".obs", "r1.to.acme."+k+".cmd.stop", "events.x", "ring1.n1.obs.x", "ring1.n1"),
			sub: commonSub("ring1.n2.cmd.>", "ring1.n2.cmd.domains", "ring1.n2.obs", "ring1.*.obs", "ring1.*.cmd.>", "ring1.>",
				"r1.ring0.>", "r1.from.>", "_INBOX.n2.>", "_INBOX.*.>", "ops.>")},
		// Ring 0's ingest user answers observations in any RING1 inbox, and may do nothing else.
		{name: "ingest", account: keys.RING1, creds: c.Ring0Ingest(t),
			pub: common("ring1.n1.obs", "ring1.*.obs", "ring1.n1.cmd.ping", "r1.ring0.revoke", "r1.to.acme."+k+".cmd.stop",
				"r1.from.acme."+k+".obs", "ops.ring1.n1.obs", "events.x", "_INBOX", "_INBOX.n1", "_R_.x.y", "x._INBOX.n1.x"),
			sub: commonSub("ring1.n1.cmd.>", "ring1.>", "r1.ring0.>", "r1.to.>", "_INBOX.n1.>", "_INBOX.*.>", "ops.>")},
		{name: "ops", account: keys.OPS, creds: c.Ops(t, "alice"),
			pub: common("ops.ring1.n1.obs", "ops.events.x", "ops.x", "ring1.n1.cmd.ping", "_INBOX.alice.x",
				"r0.to.ring1.n1.cmd.ping", "events.x", "ring2."+k+".obs"),
			sub: commonSub("ring1.>", "r0.>", "_INBOX.alice.>", "events.>", "x.>", "ring2.>")},
		{name: "tenant", account: keys.TenantAccount("acme"), creds: web1,
			pub: common("ring2."+k2+".obs", "ring2."+kg+".obs", "ring2."+k+".cmd.stop", "ring2.*.obs", "ring2.>",
				"r1.from.acme."+k+".obs", "r1.to.acme."+k2+".cmd.x", "ring1.n1.obs", "ops.>",
				"enjin.name-guard.web-1.end", "ring2."+k2+".log"),
			sub: commonSub("ring2."+k2+".cmd.>", "ring2."+kg+".cmd.>", "ring2.*.obs", "ring2.>", "ring2."+k2+".obs",
				"_INBOX."+k2+".>", "ops.>", "r1.from.>", "ring2.*.cmd.>")},
	}

	// A sink with every right in each account counts any attack message that gets through.
	var delivered atomic.Int64
	sinks := map[string]*nats.Conn{}
	for _, acct := range []string{keys.RING0, keys.RING1, keys.OPS, keys.TenantAccount("acme"), keys.TenantAccount("globex")} {
		a, err := c.Chain.Account(acct)
		if err != nil {
			t.Fatal(err)
		}
		cr, err := a.Issuer(keys.Grant{}).Mint(keys.UserRequest{Name: "sink"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		nc := c.Connect(t, cr)
		if _, err := nc.Subscribe(">", func(m *nats.Msg) {
			if strings.HasPrefix(string(m.Data), "attack") {
				delivered.Add(1)
				t.Errorf("delivered to sink of %s: %s on %s", acct, m.Data, m.Subject)
			}
		}); err != nil {
			t.Fatal(err)
		}
		flush(t, nc)
		sinks[acct] = nc
	}

	const rounds = 4
	total := 0
	for _, a := range attackers {
		v := &violations{pub: map[string]int{}, sub: map[string]int{}}
		var received atomic.Int64
		nc := c.Connect(t, a.creds, nats.ErrorHandler(v.handler), nats.PermissionErrOnSubscribe(true))
		count := func(m *nats.Msg) { received.Add(1) }
		wantPub, wantSub := 0, 0
		for r := range rounds {
			for i, s := range a.pub {
				payload := []byte(fmt.Sprintf("attack-%s-%d-%d", a.name, r, i))
				if err := nc.Publish(s, payload); err != nil {
					t.Fatalf("%s publish %s: %v", a.name, s, err)
				}
				if err := nc.PublishRequest(s, nc.NewRespInbox(), payload); err != nil {
					t.Fatalf("%s request %s: %v", a.name, s, err)
				}
				wantPub += 2
			}
			for _, s := range a.sub {
				if _, err := nc.Subscribe(s, count); err != nil {
					t.Fatalf("%s subscribe %s: %v", a.name, s, err)
				}
				if _, err := nc.QueueSubscribe(s, "q", count); err != nil {
					t.Fatalf("%s queue-subscribe %s: %v", a.name, s, err)
				}
				wantSub += 2
			}
		}
		flush(t, nc)
		harness.Eventually(t, 10*time.Second, func() bool {
			p, s := v.total()
			return p >= wantPub && s >= wantSub
		}, "%s: violations reported", a.name)
		// Bait: the sink of the attacker's own account publishes where it tried to listen.
		for _, s := range a.sub {
			if err := sinks[a.account].Publish(concrete(s), []byte("bait")); err != nil {
				t.Fatal(err)
			}
		}
		flush(t, sinks[a.account], nc)
		p, s := v.total()
		t.Logf("%-10s publish+request: %4d attempts, %4d violations; subscribe+queue: %4d attempts, %4d violations; received %d",
			a.name, wantPub, p, wantSub, s, received.Load())
		if p != wantPub || s != wantSub {
			t.Errorf("%s: violations pub %d sub %d, want %d and %d", a.name, p, s, wantPub, wantSub)
		}
		if len(v.other) > 0 {
			t.Errorf("%s: other errors: %v", a.name, v.other)
		}
		if received.Load() != 0 {
			t.Errorf("%s received %d messages through refused subscriptions", a.name, received.Load())
		}
		if !nc.IsConnected() {
			t.Errorf("%s was disconnected", a.name)
		}
		total += wantPub + wantSub
	}
	for _, nc := range sinks {
		flush(t, nc)
	}
	t.Logf("total: %d attempts outside grants, %d delivered; the server counted %d violations", total, delivered.Load(), c.Broker.Violations())
	if c.Broker.Violations() < uint64(total) {
		t.Errorf("server counted %d violations, want ≥ %d", c.Broker.Violations(), total)
	}
	if total < 1000 {
		t.Fatalf("only %d attempts, want ≥ 1000", total)
	}
}
