package ring0

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync"

	"enjin/services/api"
	"enjin/services/appapi"
	"enjin/services/apphost"
	"enjin/services/inventory"
)

// What ring 0 keeps of each placed app to run it on another host (its recipe and package),
// and how the packages travel through ring 0's memory: whole, one per carrier.

// carriers bounds the packages in ring 0's memory at once (each up to maxKept, held whole on
// its way to the store or to a host).
const carriers = 2

// carry waits for a carrier.
func (m *appMoves) carry(ctx context.Context) error {
	select {
	case m.carrier <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drop gives a carrier back.
func (m *appMoves) drop() { <-m.carrier }

// big reports whether app k's package digest is known to be over maxKept.
func (m *appMoves) big(k inventory.AppKey, digest string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tooBig[k] == digest
}

func (m *appMoves) setBig(k inventory.AppKey, digest string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tooBig == nil {
		m.tooBig = map[inventory.AppKey]string{}
	}
	m.tooBig[k] = digest
}

// keepRecipe reads app k's recipe from host h, and its package unless it is have, and keeps
// them, the recipe sealed.
func (r *Ring0) keepRecipe(ctx context.Context, h api.AppsBackend, k inventory.AppKey, have string) error {
	if err := r.moves.carry(ctx); err != nil {
		return err
	}
	defer r.moves.drop()
	ctx, cancel := context.WithTimeout(ctx, 10*hostTimeout)
	defer cancel()
	resp, err := r.hostDo(ctx, h, "GET", appapi.OpExport.Path(string(k.Tenant), k.App)+"?have="+have, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rec, pkg, err := apphost.ReadExport(io.LimitReader(resp.Body, maxKept+2<<20), maxKept)
	if err != nil {
		return err
	}
	plain, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	sealed, err := r.broker.Chain().Seal(recipeLabel(k), plain)
	if err != nil {
		return err
	}
	return r.store.PutRecipe(ctx, inventory.AppRecipe{Tenant: k.Tenant, App: k.App, Node: h.Node, Release: rec.Release,
		Digest: rec.Digest, Scale: rec.Scale, Sealed: sealed, Package: pkg})
}

func recipeLabel(k inventory.AppKey) string {
	return "app/" + string(k.Tenant) + "/" + k.App + "/recipe"
}

// importBody is what runs app k on another host: its kept recipe, unsealed, and package, as
// Export writes them. It holds one of the carriers (ring 0's memory for packages) until it is
// read to its end or closed — not while the host gets the app healthy.
func (r *Ring0) importBody(ctx context.Context, k inventory.AppKey) (*carried, error) {
	if err := r.moves.carry(ctx); err != nil {
		return nil, err
	}
	rec, err := r.store.Recipe(ctx, k.Tenant, k.App)
	var plain []byte
	if err == nil {
		plain, err = r.broker.Chain().Unseal(recipeLabel(k), rec.Sealed)
	}
	var body bytes.Buffer
	if err == nil {
		err = apphost.WriteExport(&body, plain, bytes.NewReader(rec.Package), int64(len(rec.Package)))
	}
	if err != nil {
		r.moves.drop()
		return nil, err
	}
	return &carried{b: body.Bytes(), done: r.moves.drop}, nil
}

// carried is a package on its way, read once; it gives its carrier back (and its bytes to
// the collector) at its end or when closed, whichever comes first.
type carried struct {
	b    []byte
	once sync.Once
	done func()
}

func (c *carried) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		c.Close()
		return 0, io.EOF
	}
	n := copy(p, c.b)
	c.b = c.b[n:]
	return n, nil
}

func (c *carried) Close() error {
	c.once.Do(func() { c.b = nil; c.done() })
	return nil
}
