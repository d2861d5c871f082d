package api

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nkeys"

	"enjin"
	"enjin/keys"
)

// Request bodies. Fields tagged api:"required" must be present; the OpenAPI document is
// generated from these types.

type nodeCreate struct {
	ID          enjin.NodeID   `json:"id" api:"required"`
	Ring        *enjin.Ring    `json:"ring" api:"required"`
	Label       string         `json:"label"`
	Supervision string         `json:"supervision_strategy" api:"required"`
	Observation string         `json:"observation_strategy" api:"required"`
	Compartment string         `json:"compartment,omitempty"`
	ParentNode  enjin.NodeID   `json:"parent_node,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
}

func (b *nodeCreate) validate() error {
	if err := b.ID.Validate(); err != nil {
		return invalid("id %q: want a slug or a UUID", trunc(string(b.ID), 80))
	}
	return firstErr(checkRing(b.Ring), checkLabel(b.Label),
		oneOf("supervision_strategy", b.Supervision, "process", "libvirt", "external"),
		oneOf("observation_strategy", b.Observation, "self", "probe"),
		optionalUUID("compartment", b.Compartment), optionalNode("parent_node", b.ParentNode),
		checkMetadata(b.Metadata))
}

type nodePatch struct {
	Label    *string         `json:"label,omitempty"`
	Metadata *map[string]any `json:"metadata,omitempty"`
}

func (b *nodePatch) validate() error {
	if b.Label == nil && b.Metadata == nil {
		return invalid("nothing to change: give label or metadata")
	}
	return firstErr(checkLabelPtr(b.Label), checkMetadataPtr(b.Metadata))
}

type compartmentCreate struct {
	Ring     *enjin.Ring    `json:"ring" api:"required"`
	Type     string         `json:"type" api:"required"`
	Label    string         `json:"label"`
	Parents  []string       `json:"parents,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

func (b *compartmentCreate) validate() error {
	return firstErr(checkRing(b.Ring), checkType(b.Type), checkLabel(b.Label), checkParents(b.Parents),
		checkMetadata(b.Metadata))
}

type compartmentPatch struct {
	Type     *string         `json:"type,omitempty"`
	Label    *string         `json:"label,omitempty"`
	Parents  *[]string       `json:"parents,omitempty"`
	Metadata *map[string]any `json:"metadata,omitempty"`
}

func (b *compartmentPatch) validate() error {
	if b.Type == nil && b.Label == nil && b.Parents == nil && b.Metadata == nil {
		return invalid("nothing to change: give type, label, parents or metadata")
	}
	var err error
	if b.Type != nil {
		err = checkType(*b.Type)
	}
	if b.Parents != nil {
		err = firstErr(err, checkParents(*b.Parents))
	}
	return firstErr(err, checkLabelPtr(b.Label), checkMetadataPtr(b.Metadata))
}

type tierCreate struct {
	Ring     *enjin.Ring    `json:"ring" api:"required"`
	Label    string         `json:"label"`
	Replicas *int           `json:"replicas,omitempty"` // default 1
	Metadata map[string]any `json:"metadata,omitempty"`
}

func (b *tierCreate) validate() error {
	if b.Replicas == nil {
		one := 1
		b.Replicas = &one
	}
	return firstErr(checkRing(b.Ring), checkLabel(b.Label), checkReplicas(b.Replicas), checkMetadata(b.Metadata))
}

type tierPatch struct {
	Label    *string         `json:"label,omitempty"`
	Replicas *int            `json:"replicas,omitempty"`
	Metadata *map[string]any `json:"metadata,omitempty"`
}

func (b *tierPatch) validate() error {
	if b.Label == nil && b.Replicas == nil && b.Metadata == nil {
		return invalid("nothing to change: give label, replicas or metadata")
	}
	return firstErr(checkLabelPtr(b.Label), checkReplicas(b.Replicas), checkMetadataPtr(b.Metadata))
}

type memberPut struct {
	Role string `json:"role" api:"required"`
}

func (b *memberPut) validate() error { return oneOf("role", b.Role, "primary", "replica") }

type promoteBody struct {
	Failed enjin.NodeID `json:"failed,omitempty"` // the primary believed failed; stale if it no longer is
}

func (b *promoteBody) validate() error { return optionalNode("failed", b.Failed) }

type joinTokenBody struct {
	TTLSeconds *int `json:"ttl_seconds,omitempty"` // default 3600
}

func (b *joinTokenBody) validate() error {
	if b.TTLSeconds == nil {
		hour := 3600
		b.TTLSeconds = &hour
	}
	if *b.TTLSeconds < 1 || *b.TTLSeconds > 86400 {
		return invalid("ttl_seconds %d: want 1 to 86400", *b.TTLSeconds)
	}
	return nil
}

type joinBody struct {
	Token     string `json:"token" api:"required"`
	UserKey   string `json:"user_key" api:"required"`   // the node's NATS user public key (U…)
	AttestKey string `json:"attest_key" api:"required"` // the node's attestation public key
	// AppsKey is the public key (PEM) of the node's app API, for ring 0 to certify: its app
	// API serves TLS with it when it listens beyond loopback.
	AppsKey string `json:"apps_key,omitempty"`
}

func (b *joinBody) validate() error {
	switch {
	case b.Token == "" || len(b.Token) > 512:
		return invalid("token: want the join token you were given")
	case !nkeys.IsValidPublicUserKey(b.UserKey):
		return invalid("user_key %q: want an nkeys user public key (U…)", trunc(b.UserKey, 80))
	case len(b.AppsKey) > 1024:
		return invalid("apps_key: want a PEM public key of at most 1 KiB")
	}
	if _, err := keys.ParseAttestationPublic(b.AttestKey); err != nil {
		return invalid("attest_key %q: want an attestation public key (unpadded base64url of 32 bytes)", trunc(b.AttestKey, 80))
	}
	return nil
}

type tenantCreate struct {
	Name     string         `json:"name" api:"required"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

func (b *tenantCreate) validate() error {
	if !enjin.IsSlug(b.Name) {
		return invalid("name %q: want a slug (lowercase letters, digits and inner hyphens)", trunc(b.Name, 80))
	}
	return checkMetadata(b.Metadata)
}

type opsCredsBody struct {
	Name string `json:"name" api:"required"`
}

func (b *opsCredsBody) validate() error {
	if !enjin.IsSlug(b.Name) {
		return invalid("name %q: want a slug (lowercase letters, digits and inner hyphens)", trunc(b.Name, 80))
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func checkRing(r *enjin.Ring) error {
	if r == nil {
		return invalid("ring is required")
	}
	if !r.Valid() {
		return invalid("ring %d: want 0, 1 or 2", int(*r))
	}
	return nil
}

func checkLabel(s string) error {
	if utf8.RuneCountInString(s) > 200 || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return invalid("label: want at most 200 characters, no control characters")
	}
	return nil
}

func checkLabelPtr(s *string) error {
	if s == nil {
		return nil
	}
	return checkLabel(*s)
}

var typeRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

func checkType(s string) error {
	if !typeRE.MatchString(s) {
		return invalid("type %q: want a lowercase word such as rack, row or power-feed", trunc(s, 80))
	}
	return nil
}

func checkParents(ps []string) error {
	if len(ps) > 100 {
		return invalid("%d parents: at most 100", len(ps))
	}
	for _, p := range ps {
		if !enjin.IsUUID(p) {
			return invalid("parent %q: want a compartment id (UUID)", trunc(p, 80))
		}
	}
	return nil
}

func checkReplicas(n *int) error {
	if n != nil && (*n < 0 || *n > 100) {
		return invalid("replicas %d: want 0 to 100", *n)
	}
	return nil
}

func oneOf(field, v string, allowed ...string) error {
	if !slices.Contains(allowed, v) {
		return invalid("%s %q: want one of %s", field, trunc(v, 80), strings.Join(allowed, ", "))
	}
	return nil
}

func optionalUUID(field, s string) error {
	if s != "" && !enjin.IsUUID(s) {
		return invalid("%s %q: want a UUID", field, trunc(s, 80))
	}
	return nil
}

func optionalNode(field string, id enjin.NodeID) error {
	if id != "" && id.Validate() != nil {
		return invalid("%s %q: want a node id (slug or UUID)", field, trunc(string(id), 80))
	}
	return nil
}

// Metadata is free-form JSON, bounded so one object cannot bloat the store.
const (
	maxMetaDepth = 16
	maxMetaBytes = 64 << 10
)

func checkMetadata(m map[string]any) error {
	if err := checkMetaValue(m, 1); err != nil {
		return err
	}
	if b, err := json.Marshal(m); err != nil || len(b) > maxMetaBytes {
		return invalid("metadata: at most %d bytes of JSON", maxMetaBytes)
	}
	return nil
}

func checkMetadataPtr(m *map[string]any) error {
	if m == nil {
		return nil
	}
	return checkMetadata(*m)
}

func checkMetaValue(v any, depth int) error {
	switch v := v.(type) {
	case map[string]any:
		if depth > maxMetaDepth {
			return invalid("metadata: nested deeper than %d levels", maxMetaDepth)
		}
		for k, e := range v {
			if !text(k) {
				return invalid("metadata: keys must not contain NUL")
			}
			if err := checkMetaValue(e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		if depth > maxMetaDepth {
			return invalid("metadata: nested deeper than %d levels", maxMetaDepth)
		}
		for _, e := range v {
			if err := checkMetaValue(e, depth+1); err != nil {
				return err
			}
		}
	case string:
		if !text(v) {
			return invalid("metadata: strings must not contain NUL")
		}
	}
	return nil
}
