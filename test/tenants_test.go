package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin/bus"
	"enjin/keys"
	"enjin/test/harness"
)

// TestTenantLifecycle creates a tenant through the CLI: a ring 1 node makes the scoped key
// and keeps its seed, ring 0 puts only the public half on the new account, and a user the
// node mints with it can connect. Deleting the tenant closes that user's connection and
// leaves the credential useless.
func TestTenantLifecycle(t *testing.T) {
	hb := 200 * time.Millisecond
	r := newRing0(t, hb)
	state := t.TempDir()
	harness.Start(t, "ring1", "--join-file", r.joinFile("host-a"), "--ring0", r.api(), "--state-dir", state,
		"--heartbeat", hb.String(), "--log-level", "warn")
	harness.Eventually(t, 10*time.Second, func() bool { return r.nodeState("host-a") == "up" }, "host up")

	cli := func(args ...string) string {
		cmd := exec.Command(harness.Binary(t), args...)
		cmd.Env = append(os.Environ(), "ENJIN_API="+r.api(), "ENJIN_TOKEN="+r.token)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("enjin %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	cli("tenants", "create", "acme")
	if out := cli("tenants", "ls"); !strings.Contains(out, "acme") || !strings.Contains(out, "host-a") {
		t.Fatalf("tenants ls:\n%s", out)
	}
	seedPath := filepath.Join(state, "ring1", "tenants", "acme.seed")
	fi, err := os.Stat(seedPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("scoped key seed on the host: %v %v", err, fi)
	}
	kp, err := keys.EnsureScopedKey(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := keys.Load(r.state)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := chain.Account(keys.TenantAccount("acme"))
	if err != nil {
		t.Fatal(err)
	}
	ac, _ := acct.Claims()
	pub, _ := kp.PublicKey()
	if scope, ok := ac.SigningKeys.GetScope(pub); !ok || scope == nil {
		t.Fatalf("the host's key %s is not a scoped signer of T-acme", pub)
	}
	user, err := keys.NewScopedIssuer(kp, acct.Public).Mint(keys.UserRequest{Name: "web-1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := bus.Connect(r.nats(), user)
	if err != nil {
		t.Fatalf("tenant user cannot connect: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish(bus.Ring2Obs(user.PublicKey), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	cli("tenants", "delete", "acme")
	// The disabled account drops its connections at once; reconnecting is refused.
	harness.Eventually(t, 5*time.Second, func() bool { return !nc.IsConnected() }, "tenant user disconnected after the tenant was deleted")
	t.Logf("tenant user disconnected on delete (last error: %v)", nc.LastError())
	if _, err := bus.Connect(r.nats(), user, nats.MaxReconnects(0)); err == nil {
		t.Fatal("a deleted tenant's user connected")
	}
	if out := cli("tenants", "ls"); strings.Contains(out, "acme") {
		t.Fatalf("deleted tenant still listed:\n%s", out)
	}
}
