package dns

import (
	"maps"
	"strings"
)

// zone is an immutable snapshot of the apps that exist. Writers build a new one (copying the
// maps, which is cheap at the scale of one host's apps) and swap it in atomically.
type zone struct {
	apps    map[string]struct{} // "<app>.<tenant>", lowercase
	tenants map[string]int      // tenant → number of its apps, for empty non-terminals
	serial  uint32              // SOA serial; advances with every change
}

// with returns a copy of z with the app added, or nil if it is already there.
func (z *zone) with(tenant, app string) *zone {
	key := app + "." + tenant
	if _, ok := z.apps[key]; ok {
		return nil
	}
	next := z.clone()
	next.apps[key] = struct{}{}
	next.tenants[tenant]++
	return next
}

// without returns a copy of z with the app removed, or nil if it is not there.
func (z *zone) without(tenant, app string) *zone {
	key := app + "." + tenant
	if _, ok := z.apps[key]; !ok {
		return nil
	}
	next := z.clone()
	delete(next.apps, key)
	if next.tenants[tenant]--; next.tenants[tenant] <= 0 {
		delete(next.tenants, tenant)
	}
	return next
}

func (z *zone) clone() *zone {
	next := &zone{apps: maps.Clone(z.apps), tenants: maps.Clone(z.tenants), serial: z.serial + 1}
	if next.apps == nil {
		next.apps = make(map[string]struct{})
		next.tenants = make(map[string]int)
	}
	return next
}

// kind is what a query name is to the zone.
type kind int

const (
	outside kind = iota // not in the zone: REFUSED
	missing             // in the zone but does not exist: NXDOMAIN
	apex                // the zone itself: SOA, NS
	host                // an app or the name server: A, AAAA
	tenant              // a tenant with apps, an empty non-terminal: NODATA
)

// classify says what name, lowercase and fully qualified, is in z, whose origin is given.
func (z *zone) classify(origin, name string) kind {
	if name == origin {
		return apex
	}
	rel, ok := strings.CutSuffix(name, "."+origin)
	if !ok {
		return outside
	}
	if rel == nsLabel {
		return host
	}
	// Escaped dots ("a\.b") make a label look like two; no such name is ever added, so
	// either reading ends at missing.
	app, ten, deeper := strings.Cut(rel, ".")
	switch {
	case !deeper:
		if z.tenants[app] > 0 {
			return tenant
		}
	case strings.Contains(ten, "."):
		// Deeper than <app>.<tenant>: nothing lives there.
	default:
		if _, ok := z.apps[rel]; ok {
			return host
		}
	}
	return missing
}

// nsLabel is the name server's label under the apex.
const nsLabel = "ns"
