package keys_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"

	"enjin/keys"
)

var nodeGrant = keys.Grant{
	PubAllow: []string{"ring1.*.obs", "r1.ring0.>"},
	SubAllow: []string{"ring1.*.cmd.>", "_INBOX.*.>"},
	Resp:     true,
}

func nodePerms(n string) keys.Permissions {
	return keys.Permissions{
		PubAllow: []string{"ring1." + n + ".obs", "r1.ring0.>"},
		SubAllow: []string{"ring1." + n + ".cmd.>", "_INBOX." + n + ".>"},
		Resp:     true,
	}
}

func TestMintRefusesEscalation(t *testing.T) {
	c, err := keys.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.Account(keys.RING1)
	iss := a.Issuer(nodeGrant)
	now := time.Now()
	ok := keys.UserRequest{Name: "n1", Perms: nodePerms("n1")}
	if _, err := iss.Mint(ok, now); err != nil {
		t.Fatalf("legitimate mint refused: %v", err)
	}
	with := func(f func(*keys.UserRequest)) keys.UserRequest { r := ok; r.Perms = nodePerms("n1"); f(&r); return r }
	cases := []struct {
		name string
		req  keys.UserRequest
		want error
	}{
		{"pub outside grant", with(func(r *keys.UserRequest) { r.Perms.PubAllow = append(r.Perms.PubAllow, "ring1.n2.cmd.ping") }), keys.ErrEscalation},
		{"pub everything", with(func(r *keys.UserRequest) { r.Perms.PubAllow = []string{">"} }), keys.ErrEscalation},
		{"pub empty allow means all", with(func(r *keys.UserRequest) { r.Perms.PubAllow = nil }), keys.ErrEscalation},
		{"sub wider wildcard", with(func(r *keys.UserRequest) { r.Perms.SubAllow = []string{"ring1.*.>"} }), keys.ErrEscalation},
		{"sub sys", with(func(r *keys.UserRequest) { r.Perms.SubAllow = []string{"$SYS.>"} }), keys.ErrEscalation},
		{"sub js", with(func(r *keys.UserRequest) { r.Perms.SubAllow = []string{"$JS.API.>"} }), keys.ErrEscalation},
		{"sub star", with(func(r *keys.UserRequest) { r.Perms.SubAllow = []string{"*"} }), keys.ErrEscalation},
		{"template in plain user", with(func(r *keys.UserRequest) { r.Perms.PubAllow = []string{"ring1.{{name()}}.obs"} }), nil},
		{"bad subject", with(func(r *keys.UserRequest) { r.Perms.PubAllow = []string{"ring1..obs"} }), nil},
		{"bearer", with(func(r *keys.UserRequest) { r.Bearer = true }), keys.ErrBearer},
		{"expired", with(func(r *keys.UserRequest) { r.Expires = now.Add(-time.Second) }), keys.ErrValidity},
		{"not yet valid", with(func(r *keys.UserRequest) { r.NotBefore = now.Add(time.Hour) }), keys.ErrValidity},
		{"too long-lived", with(func(r *keys.UserRequest) { r.Expires = now.Add(keys.MaxTTL + time.Hour) }), keys.ErrValidity},
		{"name star", with(func(r *keys.UserRequest) { r.Name = "*" }), nil},
		{"name gt", with(func(r *keys.UserRequest) { r.Name = ">" }), nil},
		{"name dotted", with(func(r *keys.UserRequest) { r.Name = "a.b" }), nil},
		{"name upper", with(func(r *keys.UserRequest) { r.Name = "N1" }), nil},
		{"name space", with(func(r *keys.UserRequest) { r.Name = "n 1" }), nil},
		{"name empty", with(func(r *keys.UserRequest) { r.Name = "" }), nil},
		{"not a user key", with(func(r *keys.UserRequest) { r.PublicKey = a.Public }), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := iss.Mint(tc.req, now)
			if err == nil {
				t.Fatal("minted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNarrowOnlyNarrows(t *testing.T) {
	c, _ := keys.Init(t.TempDir())
	a, _ := c.Account(keys.RING1)
	iss := a.Issuer(nodeGrant)
	n, err := iss.Narrow(nodePerms("n1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Mint(keys.UserRequest{Name: "n2", Perms: nodePerms("n2")}, time.Now()); !errors.Is(err, keys.ErrEscalation) {
		t.Fatalf("narrowed issuer minted n2's rights: %v", err)
	}
	if _, err := iss.Narrow(keys.Grant{PubAllow: []string{">"}}); !errors.Is(err, keys.ErrEscalation) {
		t.Fatalf("widened: %v", err)
	}
	quiet, err := n.Narrow(keys.Grant{PubAllow: []string{"ring1.n1.obs"}, SubAllow: []string{"ring1.n1.cmd.ping"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := quiet.Narrow(keys.Grant{PubAllow: []string{"ring1.n1.obs"}, SubAllow: []string{"ring1.n1.cmd.ping"}, Resp: true}); !errors.Is(err, keys.ErrEscalation) {
		t.Fatalf("regained the reply permission: %v", err)
	}
}

func TestScopedIssuerCarriesNoPermissions(t *testing.T) {
	c, _ := keys.Init(t.TempDir())
	a, _, _ := c.EnsureAccount("T-acme")
	kp, _ := keys.NewScopedKey()
	pub, _ := kp.PublicKey()
	ac := a.NewClaims()
	tmpl := keys.Scope{Key: pub, Role: "ring2-node", Template: keys.Permissions{PubAllow: []string{"ring2.{{subject()}}.obs"}, SubAllow: []string{"ring2.{{subject()}}.cmd.>"}}}
	grant := keys.Grant{PubAllow: []string{"ring2.*.obs"}, SubAllow: []string{"ring2.*.cmd.>"}}
	if err := keys.AddScope(ac, tmpl, grant); err != nil {
		t.Fatal(err)
	}
	wide := tmpl
	wide.Template.PubAllow = []string{"ring2.>"}
	if err := keys.AddScope(a.NewClaims(), wide, grant); !errors.Is(err, keys.ErrEscalation) {
		t.Fatalf("scope wider than grant: %v", err)
	}
	iss := keys.NewScopedIssuer(kp, a.Public)
	now := time.Now()
	cr, err := iss.Mint(keys.UserRequest{Name: "web-1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := keys.Check(cr.JWT, ac, now)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if !uc.HasEmptyPermissions() || uc.IssuerAccount != a.Public {
		t.Fatalf("scoped user carries %+v issuer account %s", uc.Permissions, uc.IssuerAccount)
	}
	if _, err := iss.Mint(keys.UserRequest{Name: "web-1", Perms: keys.Permissions{PubAllow: []string{"ring2.x.obs"}}}, now); !errors.Is(err, keys.ErrScoped) {
		t.Fatalf("scoped mint with permissions: %v", err)
	}
	for _, name := range []string{"*", ">", "a.b"} {
		if _, err := iss.Mint(keys.UserRequest{Name: name}, now); err == nil {
			t.Errorf("scoped mint named %q", name)
		}
	}
}

func TestCheckRefusesForgedCredentials(t *testing.T) {
	c, _ := keys.Init(t.TempDir())
	r1, _ := c.Account(keys.RING1)
	r0, _ := c.Account(keys.RING0)
	r1c, err := c.SignAccount(r1, r1.NewClaims())
	if err != nil {
		t.Fatal(err)
	}
	ac, _ := jwt.DecodeAccountClaims(r1c)
	now := time.Now()
	good, err := r1.Issuer(nodeGrant).Mint(keys.UserRequest{Name: "n1", Perms: nodePerms("n1")}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Check(good.JWT, ac, now); err != nil {
		t.Fatalf("good creds refused: %v", err)
	}
	forge := func(f func(*jwt.UserClaims)) string {
		uc, _ := jwt.DecodeUserClaims(good.JWT)
		f(uc)
		tok, err := uc.Encode(r1.SigningKeyPair())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	cases := map[string]struct {
		tok  string
		want error
	}{
		"other account as issuer": {forge(func(u *jwt.UserClaims) { u.IssuerAccount = r0.Public }), keys.ErrIssuer},
		"bearer":                  {forge(func(u *jwt.UserClaims) { u.BearerToken = true }), keys.ErrBearer},
		"expired":                 {forge(func(u *jwt.UserClaims) { u.Expires = now.Add(-time.Minute).Unix() }), nil},
		"not yet valid":           {forge(func(u *jwt.UserClaims) { u.NotBefore = now.Add(time.Hour).Unix() }), keys.ErrValidity},
		"name star":               {forge(func(u *jwt.UserClaims) { u.Name = "*" }), nil},
		"name gt":                 {forge(func(u *jwt.UserClaims) { u.Name = ">" }), nil},
		"name dotted":             {forge(func(u *jwt.UserClaims) { u.Name = "a.b" }), nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := keys.Check(tc.tok, ac, now)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	ac.Revoke(good.PublicKey)
	if _, err := keys.Check(good.JWT, ac, now); !errors.Is(err, keys.ErrRevoked) {
		t.Fatalf("revoked creds: %v", err)
	}
}

func TestSubset(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"a.b", "a.b", true}, {"a.b", "a.*", true}, {"a.b.c", "a.>", true}, {"a.*", "a.>", true},
		{"a.>", "a.*", false}, {"a.>", "a.>", true}, {">", "a.>", false}, {"*", "a", false},
		{"a", "a.>", false}, {"a.b", "a.b.c", false}, {"a.b.c", "a.b", false},
		{"ring2.{{subject()}}.obs", "ring2.*.obs", true}, {"ring2.{{subject()}}.obs", "ring2.x.obs", false},
		{"ring2.x.obs", "ring2.{{subject()}}.obs", false},
	}
	for _, tc := range cases {
		if got := keys.Subset(tc.a, tc.b); got != tc.want {
			t.Errorf("Subset(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
