package test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/test/harness"
)

// dial connects with a raw user JWT and key, bypassing bus.Connect, as an attacker would.
func dial(url, tok string, kp nkeys.KeyPair, bearer bool) (*nats.Conn, error) {
	sign := func(nonce []byte) ([]byte, error) {
		if bearer {
			return nil, nil
		}
		return kp.Sign(nonce)
	}
	return nats.Connect(url, nats.UserJWT(func() (string, error) { return tok, nil }, sign),
		nats.MaxReconnects(0), nats.Timeout(2*time.Second))
}

// TestMintingRefusesEscalation forges each kind of over-reaching credential and checks that
// keys refuses to mint or accept it and that the server refuses the connection.
func TestMintingRefusesEscalation(t *testing.T) {
	c := harness.StartBroker(t)
	scoped, scopedKP := c.Tenant(t, "acme")
	tenant, _ := c.Chain.Account(keys.TenantAccount("acme"))
	ring0, _ := c.Chain.Account(keys.RING0)
	ring1, _ := c.Chain.Account(keys.RING1)
	tenantClaims, _ := tenant.Claims()
	ring1Claims, _ := ring1.Claims()
	now := time.Now()

	// Controls: what the forgeries start from connects fine.
	good, err := scoped.Mint(keys.UserRequest{Name: "web-1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	goodKP, _ := good.KeyPair()
	if nc, err := dial(c.URL, good.JWT, goodKP, false); err != nil {
		t.Fatalf("control: a properly minted tenant user cannot connect: %v", err)
	} else {
		nc.Close()
	}
	node, _ := c.Ring1Node(t, "n1")
	nodeKP, _ := node.KeyPair()

	forge := func(base *keys.Creds, signer nkeys.KeyPair, f func(*jwt.UserClaims)) string {
		uc, err := jwt.DecodeUserClaims(base.JWT)
		if err != nil {
			t.Fatal(err)
		}
		f(uc)
		tok, err := uc.Encode(signer)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	cases := []struct {
		name   string
		mint   func() error // the same request through keys
		tok    string
		kp     nkeys.KeyPair
		acct   *jwt.AccountClaims
		bearer bool
	}{
		{
			name: "scoped user with its own permissions",
			mint: func() error {
				_, err := scoped.Mint(keys.UserRequest{Name: "web-1", Perms: keys.Permissions{PubAllow: []string{">"}}}, now)
				return err
			},
			tok: forge(good, scopedKP, func(u *jwt.UserClaims) {
				u.Permissions.Pub.Allow.Add(">")
				u.Permissions.Sub.Allow.Add(">")
			}),
			kp: goodKP, acct: tenantClaims,
		},
		{
			name: "user naming another account as issuer",
			mint: func() error {
				_, err := keys.Check(forgeIssuer(t, node, ring1, ring0.Public), ring1Claims, now)
				return err
			},
			tok: forgeIssuer(t, node, ring1, ring0.Public),
			kp:  nodeKP, acct: ring1Claims,
		},
		{
			name: "bearer token",
			mint: func() error {
				_, err := c.Ring1NodeIssuer(t).Mint(keys.UserRequest{Name: "n1", Perms: bus.Ring1NodePerms("n1"), Bearer: true}, now)
				return err
			},
			tok: forge(node, ring1.SigningKeyPair(), func(u *jwt.UserClaims) { u.BearerToken = true }),
			kp:  nodeKP, acct: ring1Claims, bearer: true,
		},
		{
			name: "expired",
			mint: func() error {
				_, err := c.Ring1NodeIssuer(t).Mint(keys.UserRequest{Name: "n1", Perms: bus.Ring1NodePerms("n1"), Expires: now.Add(-time.Minute)}, now)
				return err
			},
			tok: forge(node, ring1.SigningKeyPair(), func(u *jwt.UserClaims) {
				u.IssuedAt = now.Add(-time.Hour).Unix()
				u.Expires = now.Add(-time.Minute).Unix()
			}),
			kp: nodeKP, acct: ring1Claims,
		},
		{
			name: "not yet valid",
			mint: func() error {
				_, err := c.Ring1NodeIssuer(t).Mint(keys.UserRequest{Name: "n1", Perms: bus.Ring1NodePerms("n1"), NotBefore: now.Add(time.Hour)}, now)
				return err
			},
			tok: forge(node, ring1.SigningKeyPair(), func(u *jwt.UserClaims) { u.NotBefore = now.Add(time.Hour).Unix() }),
			kp:  nodeKP, acct: ring1Claims,
		},
		{
			name: "scoped user named >",
			mint: func() error { _, err := scoped.Mint(keys.UserRequest{Name: ">"}, now); return err },
			tok:  forge(good, scopedKP, func(u *jwt.UserClaims) { u.Name = ">" }),
			kp:   goodKP, acct: tenantClaims,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.mint(); err == nil {
				t.Error("keys minted or accepted it")
			}
			if _, err := keys.Check(tc.tok, tc.acct, now); err == nil {
				t.Error("keys.Check accepted the forged JWT")
			}
			nc, err := dial(c.URL, tc.tok, tc.kp, tc.bearer)
			if err == nil {
				nc.Close()
				t.Fatal("server accepted the connection")
			}
			if !errors.Is(err, nats.ErrAuthorization) && !errors.Is(err, nats.ErrAuthExpired) &&
				!strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
				t.Fatalf("refused with %v, want an authorization violation", err)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// The server cannot refuse every bad name: nats-server substitutes {{name()}} unescaped and
// "*" or "a.b" always make valid subjects. So tenant subjects are keyed by {{subject()}}, the
// user's public key, and a name can grant nothing: a forged user named "*" or "a.b" still
// cannot reach another node's subjects, and keys refuses to mint or accept such names.
func TestBadNamesGrantNothing(t *testing.T) {
	c := harness.StartBroker(t)
	scoped, scopedKP := c.Tenant(t, "acme")
	tenant, _ := c.Chain.Account(keys.TenantAccount("acme"))
	ac, _ := tenant.Claims()
	now := time.Now()
	victim, _ := scoped.Mint(keys.UserRequest{Name: "web-2"}, now)
	vc := c.Connect(t, victim)
	got := make(chan *nats.Msg, 16)
	if _, err := vc.ChanSubscribe(bus.Ring2Cmd(victim.PublicKey, ">"), got); err != nil {
		t.Fatal(err)
	}
	flush(t, vc)
	for _, name := range []string{"*", "a.b", "web-2"} {
		if name != "web-2" {
			if _, err := scoped.Mint(keys.UserRequest{Name: name}, now); !errors.Is(err, enjin.ErrBadName) {
				t.Errorf("keys minted a user named %q: %v", name, err)
			}
		}
		base, _ := scoped.Mint(keys.UserRequest{Name: "web-1"}, now)
		uc, _ := jwt.DecodeUserClaims(base.JWT)
		uc.Name = name
		tok, _ := uc.Encode(scopedKP)
		if name != "web-2" {
			if _, err := keys.Check(tok, ac, now); err == nil {
				t.Errorf("keys.Check accepted a user named %q", name)
			}
		}
		kp, _ := base.KeyPair()
		v := &violations{pub: map[string]int{}, sub: map[string]int{}}
		nc, err := nats.Connect(c.URL, nats.UserJWT(func() (string, error) { return tok, nil }, kp.Sign),
			nats.ErrorHandler(v.handler), nats.PermissionErrOnSubscribe(true))
		if err != nil {
			t.Logf("name %q refused at connect: %v", name, err)
			continue
		}
		subs := []string{bus.Ring2Obs(victim.PublicKey), "ring2.*.cmd.>", bus.Ring2Cmd(victim.PublicKey, ">")}
		for _, s := range subs {
			nc.Subscribe(s, func(*nats.Msg) { t.Errorf("name %q received a message", name) })
		}
		pubs := []string{bus.Ring2Obs(victim.PublicKey), bus.Ring2Cmd(victim.PublicKey, "stop"), "ring2.*.obs"}
		for _, s := range pubs {
			nc.Publish(s, []byte("attack"))
		}
		flush(t, nc)
		harness.Eventually(t, 5*time.Second, func() bool { p, s := v.total(); return p == len(pubs) && s == len(subs) },
			"name %q: violations", name)
		nc.Close()
	}
	flush(t, vc)
	if len(got) != 0 {
		t.Fatalf("victim received %d commands", len(got))
	}
}

func forgeIssuer(t *testing.T, base *keys.Creds, signer *keys.Account, claimed string) string {
	uc, err := jwt.DecodeUserClaims(base.JWT)
	if err != nil {
		t.Fatal(err)
	}
	uc.IssuerAccount = claimed
	tok, err := uc.Encode(signer.SigningKeyPair())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
