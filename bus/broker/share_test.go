package broker_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"

	"enjin"
	"enjin/bus"
	"enjin/bus/broker"
	"enjin/keys"
	"enjin/services/inventory"
	"enjin/test/harness"
)

// Two ring 0 members keeping their accounts in one store: a tenant added on a and another on
// b are both wired into RING1 on both servers — b's re-signing keeps a's tenant's imports —
// and b's copy of a's tenant is a's account, not one of its own. A tenant removed on b is
// disabled everywhere and retired from a's chain the next time a changes accounts. A member
// without a store of its own keys starts from it: the accounts come with it.
func TestMembersShareAccounts(t *testing.T) {
	pg := harness.StartPostgres(t)
	url := pg.CreateDatabase(t, "")
	store := func() broker.Share {
		s, err := inventory.Open(t.Context(), url, harness.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	dirs := []string{t.TempDir(), t.TempDir()}
	if _, err := keys.Init(dirs[0]); err != nil {
		t.Fatal(err)
	}
	harness.CopyKeys(t, dirs[0], dirs[1])
	pa, pb := harness.FreePort(t), harness.FreePort(t)
	a := startMember(t, dirs[0], "r0-a", pa, []string{"127.0.0.1:" + itoa(pb)}, store())
	b := startMember(t, dirs[1], "r0-b", pb, []string{"127.0.0.1:" + itoa(pa)}, store())

	a.Tenant(t, "acme")
	b.Tenant(t, "globex")
	acmeA, _ := a.Chain.Account("T-acme")
	acmeB, err := b.Chain.Account("T-acme")
	if err != nil || acmeB.Public != acmeA.Public || acmeB.SigningPublic() != acmeA.SigningPublic() {
		t.Fatalf("b's T-acme %v (%v) is not a's %s", acmeB, err, acmeA.Public)
	}
	globex, _ := b.Chain.Account("T-globex")
	for _, m := range []*harness.Cloud{a, b} {
		harness.Eventually(t, 10*time.Second, func() bool {
			from := importsOfRing1(t, m)
			return slices.Contains(from, acmeA.Public) && slices.Contains(from, globex.Public)
		}, "%s's RING1 imports from both tenants: %v", m.Broker.Server().Name(), importsOfRing1(t, m))
	}

	// A new tenant's user, minted on a, connects through b.
	web, err := func() (*keys.Creds, error) {
		iss, _ := a.Tenant(t, "initech")
		return iss.Mint(keys.UserRequest{Name: "web-1"}, time.Now())
	}()
	if err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, func() bool {
		nc, err := bus.Connect(b.URL, web)
		if err == nil {
			nc.Close()
		}
		return err == nil
	}, "initech's user connects through b")

	// acme removed through b: disabled on a's server too, and gone from a's chain and from
	// RING1's imports once a next changes accounts.
	if err := b.Broker.RemoveTenant(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, func() bool {
		ac := claimsOn(t, a, acmeA.Public)
		return ac != nil && ac.Limits.Conn == 0
	}, "acme's account disabled on a's server")
	a.Tenant(t, "hooli")
	if names, _ := a.Chain.Accounts(); slices.Contains(names, "T-acme") {
		t.Fatalf("a still holds acme's account: %v", names)
	}
	if from := importsOfRing1(t, a); slices.Contains(from, acmeA.Public) || !slices.Contains(from, globex.Public) {
		t.Fatalf("a's RING1 imports from %v after acme went; want globex's and not acme's", from)
	}

	// A third member, started from the chain as it was copied before any tenant, comes up
	// holding every live tenant account.
	dirC := t.TempDir()
	harness.CopyKeys(t, dirs[0], dirC) // a's chain now, tenants and all: set the tenants aside
	for _, tn := range []enjin.TenantID{"globex", "initech", "hooli"} {
		if err := keysRetire(dirC, tn); err != nil {
			t.Fatal(err)
		}
	}
	c := startMember(t, dirC, "r0-c", harness.FreePort(t), []string{"127.0.0.1:" + itoa(pa)}, store())
	names, _ := c.Chain.Accounts()
	for _, want := range []string{"T-globex", "T-initech", "T-hooli"} {
		if !slices.Contains(names, want) {
			t.Fatalf("c started with %v, lacking %s", names, want)
		}
	}
	if slices.Contains(names, "T-acme") {
		t.Fatalf("c took up the retired T-acme: %v", names)
	}

	// A server with a chain of its own, on the same store, refuses to start.
	if b, err := broker.New(broker.Config{StateDir: t.TempDir(), Port: -1, Logger: harness.Logger(t), Share: store()}); err == nil {
		b.Close()
		t.Fatal("a member with another trust chain started on the cluster's store")
	} else if !strings.Contains(err.Error(), "does this member hold the cluster's keys/?") {
		t.Fatalf("a stranger's start: %v", err)
	}
}

// keysRetire retires tenant tn's account from the chain under dir.
func keysRetire(dir string, tn enjin.TenantID) error {
	ch, err := keys.Load(dir)
	if err != nil {
		return err
	}
	return ch.RetireAccount(keys.TenantAccount(tn), time.Now())
}

// claimsOn is account pub's JWT as m's server holds it, or nil.
func claimsOn(t *testing.T, m *harness.Cloud, pub string) *jwt.AccountClaims {
	t.Helper()
	tok, err := m.Broker.Server().AccountResolver().Fetch(pub)
	if err != nil {
		return nil
	}
	ac, err := jwt.DecodeAccountClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	return ac
}

// importsOfRing1 lists the accounts RING1 imports from, as m's server holds its JWT.
func importsOfRing1(t *testing.T, m *harness.Cloud) []string {
	t.Helper()
	r1, _ := m.Chain.Account(keys.RING1)
	ac := claimsOn(t, m, r1.Public)
	if ac == nil {
		return nil
	}
	var from []string
	for _, im := range ac.Imports {
		from = append(from, im.Account)
	}
	return from
}
