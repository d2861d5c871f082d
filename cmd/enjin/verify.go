package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"enjin"
	"enjin/bus"
)

// verifySummary is what `enjin verify -o json` prints.
type verifySummary struct {
	Nodes        int             `json:"nodes"`
	Observations int             `json:"observations"`
	Placements   int             `json:"placements"` // apps' placements whose winning bid was checked
	Failed       int             `json:"failed"`
	Failures     []verifyFailure `json:"failures"`
}

type verifyFailure struct {
	Node   enjin.NodeID `json:"node"`
	Seq    uint64       `json:"seq,omitempty"`
	App    string       `json:"app,omitempty"` // tenant/app: the failure is of that placement's bid
	Reason string       `json:"reason"`
}

func verifyCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "verify",
		Short: "re-check every stored observation's signature and every placement's bid, offline; exit 1 on any failure",
		Long: `Fetch every stored observation with its exact signed bytes and check, here, that a key
registered for its node (now or before) signed it; then every app's placement, and check that
its winning bid was signed by a key of the node it placed the app on and answers that
placement (the same node, tenant and app). Exit status 1 if any fails.`,
		Example: "  enjin verify\n  enjin verify -o json",
		Args:    argsBetween(0, 0, "no arguments"),
	}
	out := outputFlag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		w := c.OutOrStdout()
		report := func(f verifyFailure) {
			switch {
			case out.json():
			case f.App != "":
				fmt.Fprintf(w, "FAIL placement of %s on %s: %s\n", f.App, f.Node, f.Reason)
			default:
				fmt.Fprintf(w, "FAIL %s seq %d: %s\n", f.Node, f.Seq, f.Reason)
			}
		}
		s, err := verifyAll(c.Context(), cl, report)
		if err != nil {
			return err
		}
		if out.json() {
			err = writeJSON(w, s)
		} else {
			_, err = fmt.Fprintf(w, "verified %d observations of %d nodes and the bids of %d placements: %d failed\n", s.Observations, s.Nodes, s.Placements, s.Failed)
		}
		if err == nil && s.Failed > 0 {
			err = fmt.Errorf("%d failed verification (of %d observations and %d placements)", s.Failed, s.Observations, s.Placements)
		}
		return err
	}
	return c
}

// verifyAll verifies every observation of every node, page by page, and reports each failure
// as it is found.
func verifyAll(ctx context.Context, c *client, report func(verifyFailure)) (verifySummary, error) {
	s := verifySummary{Failures: []verifyFailure{}}
	ks := newKeyring(c)
	after := ""
	for {
		var page struct {
			Nodes []struct {
				ID        enjin.NodeID `json:"id"`
				AttestPub string       `json:"attest_pub"`
			} `json:"nodes"`
		}
		path := "/v1/nodes?limit=1000"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		if err := c.get(ctx, path, &page); err != nil {
			return s, err
		}
		for _, n := range page.Nodes {
			s.Nodes++
			ks.current[n.ID] = n.AttestPub
			err := verifyNode(ctx, c, n.ID, ks, func(seq uint64, why string) {
				f := verifyFailure{Node: n.ID, Seq: seq, Reason: why}
				s.Failures = append(s.Failures, f)
				report(f)
			}, &s.Observations)
			if err != nil {
				return s, err
			}
			after = string(n.ID)
		}
		if len(page.Nodes) < 1000 {
			err := verifyPlacements(ctx, c, ks, &s, report)
			s.Failed = len(s.Failures)
			return s, err
		}
	}
}

// verifyPlacements checks every app placement's winning bid: signed by a key its node has
// had, answering that placement.
func verifyPlacements(ctx context.Context, c *client, ks *keyring, s *verifySummary, report func(verifyFailure)) error {
	var list struct {
		Placements []struct {
			Kind   string          `json:"kind"`
			Tenant enjin.TenantID  `json:"tenant"`
			App    string          `json:"app"`
			Node   enjin.NodeID    `json:"node"`
			Bid    json.RawMessage `json:"bid"`
		} `json:"placements"`
	}
	if err := c.get(ctx, "/v1/placements", &list); err != nil {
		return err
	}
	for _, p := range list.Placements {
		s.Placements++
		nodeKeys, err := ks.keysOf(ctx, p.Node)
		if err != nil {
			return err
		}
		why := bus.VerifyStoredBid(p.Bid, p.Kind, p.Node, p.Tenant, p.App, nodeKeys)
		if why != "" {
			what := string(p.Tenant) + "/" + p.App
			if p.Kind == bus.PlaceVM {
				what = "VM " + what
			}
			f := verifyFailure{Node: p.Node, App: what, Reason: why}
			s.Failures = append(s.Failures, f)
			report(f)
		}
	}
	return nil
}
