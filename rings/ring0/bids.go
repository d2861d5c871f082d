package ring0

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"enjin"
	"enjin/bus"
	"enjin/services/api"
)

// bidWait bounds how long an offer waits for the hosts' bids.
const bidWait = 3 * time.Second

// won is a host's bid that verified: the host's app API, what it said, and the signed bid as
// stored with the placement.
type won struct {
	backend api.AppsBackend
	bid     bus.Bid
	signed  []byte
}

// auction offers offer (an app's placement, or a VM's) to hosts at once and returns the
// winner: of the hosts whose bid verifies against their registered attestation key and
// answers this offer, the one running the fewest of the tenant's apps by the record (placed
// counts), then the one with the most memory free by its bid. A host that does not answer in
// time, or whose bid does not verify, takes no part; with none left the placement fails.
func (r *Ring0) auction(ctx context.Context, offer bus.Offer, hosts []api.AppsBackend, placed map[enjin.NodeID]int) (won, error) {
	var id [16]byte
	rand.Read(id[:])
	offer.ID = hex.EncodeToString(id[:])
	t, app := offer.Tenant, offer.App
	ctx, cancel := context.WithTimeout(ctx, bidWait)
	defer cancel()
	bids := make([]won, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { bids[i], errs[i] = r.bidOf(ctx, offer, h) })
	}
	wg.Wait()
	best := -1
	for i, b := range bids {
		if errs[i] != nil {
			r.log.Warn("a host's bid was not taken", "tenant", t, "placing", app, "kind", offer.Kind, "node", hosts[i].Node, "err", errs[i])
			continue
		}
		if best < 0 || placed[b.backend.Node] < placed[bids[best].backend.Node] ||
			placed[b.backend.Node] == placed[bids[best].backend.Node] && b.bid.MemFreeMB > bids[best].bid.MemFreeMB {
			best = i
		}
	}
	if best < 0 {
		return won{}, fmt.Errorf("ring0: no host of %s bid for %s/%s: %w", t, t, app, errors.Join(append(errs, ErrNode)...))
	}
	return bids[best], nil
}

// placeBy offers tenant t's app to hosts by auction (fewest of t's apps placed, then most
// memory free) and has the winner host t from now on, if it did not.
func (r *Ring0) placeBy(ctx context.Context, t enjin.TenantID, app string, hosts []api.AppsBackend) (won, error) {
	count, err := r.store.AppsPlaced(ctx, t)
	if err != nil {
		return won{}, err
	}
	w, err := r.auction(ctx, bus.Offer{Tenant: t, App: app}, hosts, count)
	if err != nil {
		return won{}, err
	}
	return w, r.hostOn(ctx, t, w.backend.Node)
}

// bidOf asks host h for its bid on offer o and checks it.
func (r *Ring0) bidOf(ctx context.Context, o bus.Offer, h api.AppsBackend) (won, error) {
	sb, err := bus.Request[bus.Offer, bus.SignedBid](ctx, r.nc, bus.R0ToRing1Cmd(h.Node, bus.VerbBid), o)
	if err != nil {
		return won{}, err
	}
	n, err := r.store.GetNode(ctx, h.Node)
	if err != nil {
		return won{}, err
	}
	bid, err := sb.Open(n.AttestPub)
	if err == nil {
		err = bid.Answers(o, h.Node)
	}
	if err != nil {
		return won{}, err
	}
	signed, err := json.Marshal(sb)
	return won{backend: h, bid: bid, signed: signed}, err
}
