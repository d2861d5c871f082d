package main

import (
	"context"
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"enjin/rings"
)

// verifySummary is what `enjin verify -o json` prints.
type verifySummary struct {
	Nodes        int             `json:"nodes"`
	Observations int             `json:"observations"`
	Failed       int             `json:"failed"`
	Failures     []verifyFailure `json:"failures"`
}

type verifyFailure struct {
	Node   rings.NodeID `json:"node"`
	Seq    uint64       `json:"seq"`
	Reason string       `json:"reason"`
}

func verifyCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "verify",
		Short: "re-check every stored observation's signature, offline; exit 1 on any failure",
		Long: `Fetch every stored observation with its exact signed bytes and check, here, that a key
registered for its node (now or before) signed it. Exit status 1 if any fails.`,
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
			if !out.json() {
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
			_, err = fmt.Fprintf(w, "verified %d observations of %d nodes: %d failed\n", s.Observations, s.Nodes, s.Failed)
		}
		if err == nil && s.Failed > 0 {
			err = fmt.Errorf("%d observations failed verification", s.Failed)
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
				ID        rings.NodeID `json:"id"`
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
			s.Failed = len(s.Failures)
			return s, nil
		}
	}
}
