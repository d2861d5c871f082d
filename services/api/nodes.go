package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"enjin"
	"enjin/keys"
	"enjin/services/inventory"
)

type nodeList struct {
	Nodes []inventory.Node `json:"nodes"`
	Next  enjin.NodeID     `json:"next,omitempty"` // pass as after= for the next page; absent on the last
}

func (a *API) listNodes(c *call) error {
	f, err := nodeFilter(c.q)
	if err != nil {
		return err
	}
	nodes, err := a.store.ListNodes(c.ctx, f)
	if err != nil {
		return err
	}
	out := nodeList{Nodes: nonNil(nodes)}
	if len(nodes) == f.Limit {
		out.Next = nodes[len(nodes)-1].ID
	}
	a.reply(c.w, http.StatusOK, out)
	return nil
}

func (a *API) createNode(c *call) error {
	b := c.in.(*nodeCreate)
	n, err := a.store.CreateNode(c.ctx, inventory.Node{ID: b.ID, Ring: *b.Ring, Label: b.Label,
		Supervision: b.Supervision, Observation: b.Observation, Compartment: b.Compartment,
		ParentNode: string(b.ParentNode), Metadata: b.Metadata})
	if err != nil {
		return err
	}
	a.created(c, "/v1/nodes/"+string(n.ID), n.Version, n)
	return nil
}

func (a *API) getNode(c *call) error {
	n, err := a.store.GetNode(c.ctx, c.node())
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, n.Version, n)
	return nil
}

func (a *API) patchNode(c *call) error {
	b := c.in.(*nodePatch)
	var meta map[string]any
	if b.Metadata != nil {
		meta = *b.Metadata
		if meta == nil {
			meta = map[string]any{}
		}
	}
	n, err := a.store.UpdateNode(c.ctx, c.node(), c.version, b.Label, meta)
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, n.Version, n)
	return nil
}

// nodeStates are the states ring 0 judges a node in.
var nodeStates = []string{"unknown", "up", "suspect", "down", inventory.StateDecommissioned}

// decommissionNode takes a ring 1 node out of service; the answer is the node, now
// decommissioned, which stays listed with its history.
func (a *API) decommissionNode(c *call) error {
	n, err := a.ring0.Decommission(c.ctx, c.node(), c.version)
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, n.Version, n)
	return nil
}

type observationList struct {
	Observations []enjin.SignedObservation `json:"observations"`
}

// nodeFilter reads the node list's query parameters.
func nodeFilter(q query) (inventory.NodeFilter, error) {
	f := inventory.NodeFilter{Metadata: q.meta, State: q.vals["state"]}
	if s, ok := q.vals["ring"]; ok {
		if len(s) != 1 || s[0] < '0' || s[0] > '2' {
			return f, badRequest("bad_query", "ring %q: want 0, 1 or 2", trunc(s, 40))
		}
		r := enjin.Ring(s[0] - '0')
		f.Ring = &r
	}
	if f.State != "" && oneOf("state", f.State, nodeStates...) != nil {
		return f, badRequest("bad_query", "state %q: want one of %s", trunc(f.State, 40), strings.Join(nodeStates, ", "))
	}
	if s, ok := q.vals["after"]; ok {
		if f.After = enjin.NodeID(s); f.After.Validate() != nil {
			return f, badRequest("bad_query", "after %q: want a node id", trunc(s, 80))
		}
	}
	var err error
	f.Limit, err = q.intParam("limit", 1, 10000, 1000)
	return f, err
}

// observation is a stored observation with everything needed to verify it offline.
// observationPage reads the observation list's query parameters.
func observationPage(q query) (limit int, before uint64, err error) {
	if limit, err = q.intParam("limit", 1, 1000, 100); err != nil {
		return 0, 0, err
	}
	if s, ok := q.vals["before"]; ok {
		if before, err = strconv.ParseUint(s, 10, 63); err != nil || before == 0 {
			return 0, 0, badRequest("bad_query", "before %q: want a sequence number from 1", trunc(s, 40))
		}
	}
	return limit, before, nil
}

func (a *API) observations(c *call) error {
	limit, before, err := observationPage(c.q)
	if err != nil {
		return err
	}
	if _, err := a.store.GetNode(c.ctx, c.node()); err != nil {
		return err
	}
	obs, err := a.store.Observations(c.ctx, c.node(), limit, before)
	if err != nil {
		return err
	}
	for i, o := range obs {
		if utf8.Valid(o.Payload) && json.Valid(o.Payload) {
			obs[i].Observation = json.RawMessage(o.Payload)
		}
	}
	out := observationList{Observations: obs}
	a.reply(c.w, http.StatusOK, out)
	return nil
}

type joinToken struct {
	// Token is the one-time secret, a dot and the fingerprint of the CA ring 0 serves TLS
	// from: the joining node checks ring 0's certificate against it before it sends the
	// secret.
	Token         string    `json:"token"`
	ExpiresAt     time.Time `json:"expires_at"`
	CAFingerprint string    `json:"ca_fingerprint"`
}

func (a *API) joinToken(c *call) error {
	ttl := time.Duration(*c.in.(*joinTokenBody).TTLSeconds) * time.Second
	n, err := a.store.GetNode(c.ctx, c.node())
	if err != nil {
		return err
	}
	if n.Supervision != "external" {
		return invalid("node %s is supervised by %s; join tokens are for external nodes", n.ID, n.Supervision)
	}
	if n.State == inventory.StateDecommissioned {
		return invalid("node %s is decommissioned; register a node with a new id", n.ID)
	}
	expires := time.Now().Add(ttl).UTC().Truncate(time.Second)
	tok, err := a.store.CreateJoinToken(c.ctx, n.ID, ttl)
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusCreated, joinToken{Token: keys.JoinToken(tok, a.caPrint), ExpiresAt: expires, CAFingerprint: a.caPrint})
	return nil
}

func (a *API) join(c *call) error {
	b := c.in.(*joinBody)
	secret, _ := keys.SplitJoinToken(b.Token) // the fingerprint is the node's to check
	res, err := a.ring0.Join(c.ctx, secret, b.UserKey, b.AttestKey, b.AppsKey)
	if errors.Is(err, inventory.ErrNotFound) {
		return &apiError{http.StatusForbidden, "bad_token", "the join token is unknown, used or expired"}
	}
	if errors.Is(err, ErrBadAppsKey) {
		return invalid("apps_key: %v", err)
	}
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, res)
	return nil
}

type opsCreds struct {
	Creds string `json:"creds"` // the .creds file: the user JWT and its seed
}

func (a *API) opsCreds(c *call) error {
	b, err := a.ring0.OpsCreds(c.ctx, c.in.(*opsCredsBody).Name)
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, opsCreds{Creds: string(b)})
	return nil
}

// created answers a creation: 201 with the object, its ETag and Location.
func (a *API) created(c *call, location string, version int64, v any) {
	c.w.Header().Set("Location", location)
	a.versioned(c, http.StatusCreated, version, v)
}

// versioned answers with a versioned object and its ETag.
func (a *API) versioned(c *call, status int, version int64, v any) {
	c.w.Header().Set("ETag", etag(version))
	a.reply(c.w, status, v)
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
