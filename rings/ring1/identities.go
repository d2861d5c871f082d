package ring1

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/services/apphost"
)

// identities holds the bus identities of the app instances this node runs: each instance, a
// ring 2 node, gets a user of its tenant's account, minted here with the tenant's scoped key
// (the account's template fixes what it may do: publish under its own key). Its log lines are
// published as it, on the tenant's log subject; when it stops, ring 0 is asked to revoke it.
type identities struct {
	n   *Node
	nc  *nats.Conn // the node's own connection, for revoke requests
	url string

	mu    sync.Mutex
	users map[string]*instanceUser // by instance id
}

type instanceUser struct {
	tenant enjin.TenantID
	pub    string
	nc     *nats.Conn
}

func newIdentities(n *Node, nc *nats.Conn) *identities {
	return &identities{n: n, nc: nc, url: n.cfg.NATSURL, users: map[string]*instanceUser{}}
}

// user returns the instance's identity, minting and connecting it the first time.
func (ids *identities) user(tenant enjin.TenantID, instance string) (*instanceUser, error) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if u, ok := ids.users[instance]; ok {
		return u, nil
	}
	dir := filepath.Join(ids.n.cfg.Dir, "tenants")
	kp, err := keys.EnsureScopedKey(filepath.Join(dir, string(tenant)+".seed"))
	if err != nil {
		return nil, err
	}
	acct, err := os.ReadFile(filepath.Join(dir, string(tenant)+".account"))
	if err != nil || !nkeys.IsValidPublicAccountKey(strings.TrimSpace(string(acct))) {
		return nil, fmt.Errorf("tenant %s: account unknown here: %v", tenant, err)
	}
	c, err := keys.NewScopedIssuer(kp, strings.TrimSpace(string(acct))).Mint(keys.UserRequest{Name: instance}, time.Now())
	if err != nil {
		return nil, err
	}
	nc, err := bus.Connect(ids.url, c, append(ids.n.cfg.busTLS(), nats.MaxReconnects(-1))...)
	if err != nil {
		return nil, err
	}
	u := &instanceUser{tenant: tenant, pub: c.PublicKey, nc: nc}
	ids.users[instance] = u
	return u, nil
}

// publish sends a log line of an instance on its tenant's log subject, as the instance.
func (ids *identities) publish(tenant, _ string, l apphost.LogLine) {
	u, err := ids.user(enjin.TenantID(tenant), l.Instance)
	if err != nil {
		ids.n.log.Warn("instance has no bus identity; log line kept locally only", "instance", l.Instance, "err", err)
		return
	}
	b, _ := json.Marshal(l)
	_ = u.nc.Publish(bus.Ring2Log(u.pub), b) // at most once, like every log line on the bus
}

// stopped drops an instance's identity and asks ring 0 to revoke it.
func (ids *identities) stopped(tenant, _ string, instance string) {
	ids.mu.Lock()
	u, ok := ids.users[instance]
	delete(ids.users, instance)
	ids.mu.Unlock()
	if !ok {
		return
	}
	u.nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ids.n.revokes != nil {
		ids.n.revokes.add(ctx, ids.nc, bus.RevokeRequest{Tenant: enjin.TenantID(tenant), User: u.pub})
	}
}

func (ids *identities) close() {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	for id, u := range ids.users {
		u.nc.Close()
		delete(ids.users, id)
	}
}
