// Package enjin is enjin's shared vocabulary: the three rings, the identifiers of nodes and
// tenants, the observations nodes publish about themselves, and the options ring 0 starts a
// ring 1 node with (the command line of `enjin ring1`).
//
// enjin is built of three nested rings. Ring 0 (meta) holds the keys, the inventory and the meta
// API, and supervises ring 1. Ring 1 (infrastructure) runs hosts, VMs, networks and the tenant
// API, and supervises ring 2. Ring 2 (platform) is tenants' workloads. Desired state flows down
// (API → store → command on the bus → supervisor → node); observed state flows up (node → signed
// observation → verify → store → API and the ops view).
//
// Every other package may import enjin; it imports only the standard library, so the types
// here can appear in any signature without dragging a dependency along.
package enjin

import (
	"errors"
	"fmt"
)

// Ring is the depth of a node in the cloud: 0 is meta, 1 infrastructure, 2 platform.
type Ring int

// The rings.
const (
	Ring0 Ring = 0
	Ring1 Ring = 1
	Ring2 Ring = 2
)

// Valid reports whether r is one of the three rings.
func (r Ring) Valid() bool { return r >= Ring0 && r <= Ring2 }

func (r Ring) String() string { return fmt.Sprintf("ring%d", int(r)) }

// NodeID names a node in any ring. It is a slug (lowercase letters, digits and inner hyphens,
// at most 63 bytes) or a UUID, so it is always safe as one token of a bus subject.
type NodeID string

// TenantID names a tenant. Same syntax as NodeID.
type TenantID string

// SystemTenant is the tenant the cloud runs its own chores as (scheduled backups), in the
// same sandboxes as any tenant's apps. Only ring 0 creates it; nobody else may take its name.
const SystemTenant TenantID = "enjin"

// ErrBadName is returned for a node or tenant name that is not a slug or UUID.
var ErrBadName = errors.New("not a slug or UUID")

// Validate reports whether id is a slug or a UUID.
func (id NodeID) Validate() error { return validName("node id", string(id)) }

// Validate reports whether t is a slug or a UUID.
func (t TenantID) Validate() error { return validName("tenant id", string(t)) }

// MaxNameLen is the longest node or tenant name accepted (a DNS label).
const MaxNameLen = 63

func validName(what, s string) error {
	if IsSlug(s) || IsUUID(s) {
		return nil
	}
	return fmt.Errorf("%s %q: %w", what, s, ErrBadName)
}

// IsSlug reports whether s is 1–63 bytes of [a-z0-9-], neither starting nor ending with '-'.
func IsSlug(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// IsUUID reports whether s is a lowercase canonical UUID (8-4-4-4-12 hex digits).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
