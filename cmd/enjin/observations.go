package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"

	"enjin"
	"enjin/bus"
)

// Offline verification: `enjin verify` fetches each stored observation and checks it with
// bus.VerifyStored, with nothing but the API's answers and the signature scheme.

// keyring knows every attestation key each node has had. Keys are fetched only for nodes that
// sign: a ring 2 node's observations are its ring 1 node's, who signed them.
type keyring struct {
	c       *client
	current map[enjin.NodeID]string   // the node's key now, from the node list
	all     map[enjin.NodeID][]string // current and every earlier key, from its history
}

func newKeyring(c *client) *keyring {
	return &keyring{c: c, current: map[enjin.NodeID]string{}, all: map[enjin.NodeID][]string{}}
}

// keysOf returns every key node has had.
func (k *keyring) keysOf(ctx context.Context, n enjin.NodeID) ([]string, error) {
	if ks, ok := k.all[n]; ok {
		return ks, nil
	}
	if _, ok := k.current[n]; !ok {
		var nd struct {
			AttestPub string `json:"attest_pub"`
		}
		if err := k.c.get(ctx, "/v1/nodes/"+url.PathEscape(string(n)), &nd); err != nil {
			return nil, err
		}
		k.current[n] = nd.AttestPub
	}
	ks, err := nodeKeys(ctx, k.c, n, k.current[n])
	k.all[n] = ks
	return ks, err
}

// nodeKeys lists every attestation key node has had, from its history.
func nodeKeys(ctx context.Context, c *client, node enjin.NodeID, current string) ([]string, error) {
	var h struct {
		History []struct {
			Data struct {
				AttestPub string `json:"attest_pub"`
			} `json:"data"`
		} `json:"history"`
	}
	if err := c.get(ctx, "/v1/history/node/"+url.PathEscape(string(node)), &h); err != nil {
		return nil, err
	}
	ks := []string{current}
	for _, e := range h.History {
		if e.Data.AttestPub != "" && !slices.Contains(ks, e.Data.AttestPub) {
			ks = append(ks, e.Data.AttestPub)
		}
	}
	return ks, nil
}

// verifyNode verifies node's observations, newest first, counting them in checked and calling
// fail for each that does not verify.
func verifyNode(ctx context.Context, c *client, node enjin.NodeID, ks *keyring, fail func(seq uint64, why string), checked *int) error {
	before := uint64(0)
	for {
		var page struct {
			Observations []enjin.SignedObservation `json:"observations"`
		}
		path := fmt.Sprintf("/v1/nodes/%s/observations?limit=1000", url.PathEscape(string(node)))
		if before > 0 {
			path += "&before=" + strconv.FormatUint(before, 10)
		}
		if err := c.get(ctx, path, &page); err != nil {
			return err
		}
		for _, o := range page.Observations {
			*checked++
			registered, err := ks.keysOf(ctx, o.SignedBy())
			if err != nil {
				return err
			}
			if why := bus.VerifyStored(o, registered); why != "" {
				fail(o.Seq, why)
			}
			before = o.Seq
		}
		if len(page.Observations) < 1000 {
			return nil
		}
	}
}
