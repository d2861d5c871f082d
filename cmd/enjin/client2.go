package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"enjin/bus"
	"enjin/keys"
	"enjin/rings"
)

func cmdCompartments(ctx context.Context, args []string, stdout io.Writer) error {
	verb := "ls"
	if len(args) > 0 && (args[0] == "ls" || args[0] == "create" || args[0] == "show" || args[0] == "delete") {
		verb, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("compartments "+verb, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	out := outputFlag(fs)
	var parents multiFlag
	typ, label, ring := "", "", 0
	if verb == "create" {
		fs.StringVar(&typ, "type", "", "kind of compartment: region, site, row, rack, power-feed, …")
		fs.StringVar(&label, "label", "", "human name")
		fs.IntVar(&ring, "ring", 0, "ring the compartment belongs to")
		fs.Var(&parents, "parent", "id of a parent compartment (repeatable)")
	}
	var id string
	if (verb == "show" || verb == "delete") && len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		id, args = args[0], args[1:]
	}
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		if help {
			fmt.Fprintln(stdout, "\nverbs: ls, create --type T --label L [--parent ID]…, show ID, delete ID")
		}
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	if (verb == "show" || verb == "delete") && id == "" {
		return usageError{"compartments " + verb + ": give a compartment id"}
	}
	if verb == "create" && (typ == "" || label == "") {
		return usageError{"compartments create: --type and --label are required"}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var res any
	switch verb {
	case "ls":
		var r struct {
			Compartments []map[string]any `json:"compartments"`
		}
		if _, err := c.do(ctx, "GET", "/v1/compartments", nil, nil, &r); err != nil {
			return err
		}
		if *out == "table" {
			fmt.Fprintf(stdout, "%-36s %-10s %-4s %-20s %s\n", "ID", "TYPE", "RING", "LABEL", "PARENTS")
			for _, m := range r.Compartments {
				fmt.Fprintf(stdout, "%-36v %-10v %-4v %-20v %v\n", m["id"], m["type"], m["ring"], m["label"], m["parents"])
			}
			return nil
		}
		res = r
	case "create":
		body := map[string]any{"ring": ring, "type": typ, "label": label, "parents": append([]string{}, parents...)}
		if _, err := c.do(ctx, "POST", "/v1/compartments", nil, body, &res); err != nil {
			return err
		}
	case "show":
		if _, err := c.do(ctx, "GET", "/v1/compartments/"+url.PathEscape(id), nil, nil, &res); err != nil {
			return err
		}
	case "delete":
		var cur struct {
			Version int64 `json:"version"`
		}
		if _, err := c.do(ctx, "GET", "/v1/compartments/"+url.PathEscape(id), nil, nil, &cur); err != nil {
			return err
		}
		h := http.Header{"If-Match": {strconv.Quote(strconv.FormatInt(cur.Version, 10))}}
		if _, err := c.do(ctx, "DELETE", "/v1/compartments/"+url.PathEscape(id), h, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", id)
		return nil
	}
	return writeJSON(stdout, res)
}

// storedObservation is an observation as the API returns it: enough to verify offline.
type storedObservation struct {
	Node     rings.NodeID `json:"node"`
	Observer rings.NodeID `json:"observer"` // set when another node (the supervisor) signed it
	Seq      uint64       `json:"seq"`
	TsNs     int64        `json:"ts_ns"`
	Signer   string       `json:"signer"`
	Sig      string       `json:"sig"`
	Payload  string       `json:"payload"`
}

func cmdVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var checked, failed, nodes int
	after := ""
	// Keys are fetched only for nodes that sign: a ring 2 node's observations are its ring 1
	// node's, who signed them.
	keyCache := map[rings.NodeID][]string{}
	current := map[rings.NodeID]string{}
	keysOf := func(n rings.NodeID) ([]string, error) {
		if ks, ok := keyCache[n]; ok {
			return ks, nil
		}
		if _, ok := current[n]; !ok {
			var nd struct {
				AttestPub string `json:"attest_pub"`
			}
			if _, err := c.do(ctx, "GET", "/v1/nodes/"+url.PathEscape(string(n)), nil, nil, &nd); err != nil {
				return nil, err
			}
			current[n] = nd.AttestPub
		}
		ks, err := nodeKeys(ctx, c, n, current[n])
		keyCache[n] = ks
		return ks, err
	}
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
		if _, err := c.do(ctx, "GET", path, nil, nil, &page); err != nil {
			return err
		}
		for _, n := range page.Nodes {
			nodes++
			current[n.ID] = n.AttestPub
			k, f, err := verifyNode(ctx, c, n.ID, keysOf, stdout)
			if err != nil {
				return err
			}
			checked, failed = checked+k, failed+f
			after = string(n.ID)
		}
		if len(page.Nodes) < 1000 {
			break
		}
	}
	fmt.Fprintf(stdout, "verified %d observations of %d nodes: %d failed\n", checked, nodes, failed)
	if failed > 0 {
		return fmt.Errorf("%d observations failed verification", failed)
	}
	return nil
}

// nodeKeys lists every attestation key node has had, from its history.
func nodeKeys(ctx context.Context, c *client, node rings.NodeID, current string) ([]string, error) {
	var h struct {
		History []struct {
			Data struct {
				AttestPub string `json:"attest_pub"`
			} `json:"data"`
		} `json:"history"`
	}
	if _, err := c.do(ctx, "GET", "/v1/history/node/"+url.PathEscape(string(node)), nil, nil, &h); err != nil {
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

func verifyNode(ctx context.Context, c *client, node rings.NodeID, keysOf func(rings.NodeID) ([]string, error), stdout io.Writer) (checked, failed int, err error) {
	before := uint64(0)
	for {
		var page struct {
			Observations []storedObservation `json:"observations"`
		}
		path := fmt.Sprintf("/v1/nodes/%s/observations?limit=1000", url.PathEscape(string(node)))
		if before > 0 {
			path += "&before=" + strconv.FormatUint(before, 10)
		}
		if _, err := c.do(ctx, "GET", path, nil, nil, &page); err != nil {
			return checked, failed, err
		}
		for _, o := range page.Observations {
			checked++
			signer := node
			if o.Observer != "" {
				signer = o.Observer // an observation the node's supervisor made and signed
			}
			registered, err := keysOf(signer)
			if err != nil {
				return checked, failed, err
			}
			if why := verifyStored(o, registered); why != "" {
				failed++
				fmt.Fprintf(stdout, "FAIL %s seq %d: %s\n", node, o.Seq, why)
			}
			before = o.Seq
		}
		if len(page.Observations) < 1000 {
			return checked, failed, nil
		}
	}
}

func verifyStored(o storedObservation, registered []string) string {
	if !slices.Contains(registered, o.Signer) {
		return "signer is not a key registered for the node"
	}
	pub, err := keys.ParseAttestationPublic(o.Signer)
	if err != nil {
		return err.Error()
	}
	sig, err1 := base64.RawURLEncoding.DecodeString(o.Sig)
	payload, err2 := base64.RawURLEncoding.DecodeString(o.Payload)
	if err1 != nil || err2 != nil {
		return "undecodable signature or payload"
	}
	signedBy := o.Node
	if o.Observer != "" {
		signedBy = o.Observer
	}
	if !bus.VerifySignature(pub, signedBy, o.TsNs, o.Seq, payload, sig) {
		return "bad signature"
	}
	return ""
}
