package api

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"enjin"
	"enjin/services/inventory"
)

// route is one operation of the API. The mux and the OpenAPI document are both built from
// the table in routes, and wrap enforces what a route declares (access, path ids, If-Match,
// query parameters, body), so what is documented is what is checked.
type route struct {
	method, path string
	access       access
	summary      string
	query        []param          // the query parameters the route takes
	meta         bool             // whether it also takes metadata.<key>=<value> filters
	ifMatch      condition        // whether it takes If-Match
	body         body             // a value of its request body type; nil: no body
	optional     bool             // whether the body may be left out
	rawBody      string           // for forwarded routes: the content type of a body passed through unread
	rawIn        any              // for a JSON body passed through unread: a value of its type, for the document
	forwarded    bool             // ring 1's app API answers it: its errors are appapi.Error
	tenantOK     bool             // a tenant's own identity may call it, for its own tenant
	tenantOwn    bool             // a tenant's own identity may call it; the handler keeps it to its tenant's objects
	backupOK     bool             // the backup credential may call it (and no other route)
	rawOut       string           // the content type of a success answer that is not JSON
	answers      map[int][]string // answers besides or instead of those the fields declare (the web view's pages and redirects): by status, their content types (none: no content)
	status       int              // its success status
	accepted     bool             // it may also answer 202 with the same body: work it started goes on
	out          any              // a value of its success response type; nil: no content
	lines        []any            // an application/x-ndjson answer: values of the types of its lines (with out, when asked for in Accept, as 200)
	serve        func(*call) error
}

// condition says whether a route takes If-Match.
type condition int

const (
	noCondition condition = iota
	mayMatch              // checked if given
	mustMatch             // required (writes to versioned objects)
)

// param is a documented query parameter.
type param struct {
	name   string
	schema map[string]any
	desc   string
}

// call is one request to a route, checked against the route's declarations.
type call struct {
	w          http.ResponseWriter
	r          *http.Request
	ctx        context.Context
	id         Identity          // who is calling; zero on public routes
	path       map[string]string // validated path wildcards (UUIDs lowercased)
	version    int64             // from If-Match
	hasVersion bool
	q          query
	in         body // decoded and validated body, nil if the route takes none
}

func (c *call) node() enjin.NodeID { return enjin.NodeID(c.path["node"]) }

// wildcard checks and documents one kind of path wildcard, by name.
type wildcard struct {
	desc  string
	check func(string) (string, bool)
}

var wildcards = map[string]wildcard{
	"node":        {"node id: a slug or a UUID", checkNodeID},
	"compartment": {"compartment id (UUID)", checkUUID},
	"tier":        {"tier id (UUID)", checkUUID},
	"tenant":      {"tenant id: a slug", checkTenantID},
	"app":         {"app name: a slug", checkTenantID},
	"proctype":    {"process type, as in the Procfile", checkProcType},
	"kind":        {"kind of object: node, compartment or tier", checkKind},
	"id":          {"the object's id: a node id, or a compartment's or tier's UUID", checkObjectID},
	"vm":          {"VM name: a slug", checkTenantID},
	"volume":      {"volume name: a slug", checkTenantID},
	"network":     {"network name: a slug", checkTenantID},
	"ruleset":     {"rule set name: a slug", checkTenantID},
	"mac":         {"MAC address, as 52:54:00:ab:cd:ef", checkMAC},
	"image":       {"image id (UUID)", checkUUID},
	"domain":      {"domain name: letters, digits and inner hyphens in two or more dot-separated labels (Unicode ones as IDNA), no wildcard", checkDomain},
	"file":        {"a file name of the web view, such as app.js", checkStaticName},
}

func checkNodeID(s string) (string, bool)   { return s, enjin.NodeID(s).Validate() == nil }
func checkTenantID(s string) (string, bool) { return s, enjin.IsSlug(s) }
func checkProcType(s string) (string, bool) {
	return s, len(s) > 0 && len(s) <= 31 && s[0] >= 'a' && s[0] <= 'z' && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == ""
}
func checkMAC(s string) (string, bool) {
	s = strings.ToLower(s)
	if len(s) != 17 {
		return s, false
	}
	for i := 0; i < 17; i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' {
				return s, false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return s, false
		}
	}
	return s, true
}
func checkUUID(s string) (string, bool) { s = strings.ToLower(s); return s, enjin.IsUUID(s) }
func checkKind(s string) (string, bool) {
	return s, s == "node" || s == "compartment" || s == "tier"
}
func checkObjectID(s string) (string, bool) {
	if u, ok := checkUUID(s); ok {
		return u, true
	}
	return checkNodeID(s)
}

// pathWildcards lists the {names} in a route path.
func pathWildcards(path string) []string {
	var names []string
	for _, seg := range strings.Split(path, "/") {
		if n, ok := strings.CutPrefix(seg, "{"); ok {
			names = append(names, strings.TrimSuffix(n, "}"))
		}
	}
	return names
}

// newBody returns a fresh value of the route's body type.
func (rt route) newBody() body {
	return reflect.New(reflect.TypeOf(rt.body).Elem()).Interface().(body)
}

func intSchema(lo, hi int) map[string]any {
	return map[string]any{"type": "integer", "minimum": lo, "maximum": hi}
}

var (
	strSchema = map[string]any{"type": "string"}
	metaDoc   = "filter on metadata: any number of metadata.<key>=<value>; every key must have exactly that string value"
)

func (a *API) routes() []route {
	return append([]route{
		{method: "GET", path: "/healthz", access: public, summary: "Health: ok when the database answers",
			status: http.StatusOK, out: health{}, serve: a.health},
		{method: "GET", path: "/v1/leader", access: reader, summary: "Which ring 0 member leads (liveness verdicts and other singleton work) and its fencing epoch, and whether the member answering is it",
			status: http.StatusOK, out: leaderView{}, serve: a.leader},
		{method: "GET", path: "/v1/members", access: reader, summary: "The ring 0 members that announced themselves in the last 30 s: each one's API and NATS URLs (what endpoints.json lists for the CLI to fail over to)",
			status: http.StatusOK, out: memberList{}, serve: a.members},
		{method: "GET", path: "/v1/placements", access: reader, summary: "Where every app and VM was placed, each with the winning bid its host signed (the bid's exact bytes, the host's attestation key, the signature), for checking offline; for apps, the release ring 0 keeps to re-place them with if their host goes down (kept_release), and moved_from while a re-placed app has yet to run on its new host",
			status: http.StatusOK, out: placementList{}, serve: a.placements},
		{method: "GET", path: "/metrics", access: a.metricsAccess(), summary: "Prometheus metrics (text exposition): ingest (committed, refused by reason, acknowledgement latency), nodes by state, revocations, API requests by route and status; without a token only while the API listens on loopback",
			rawOut: "text/plain; version=0.0.4", status: http.StatusOK, serve: a.serveMetrics},
		{method: "GET", path: "/openapi.json", access: public, summary: "This API's OpenAPI document",
			status: http.StatusOK, out: map[string]any{}, serve: a.document},

		{method: "GET", path: "/v1/nodes", access: reader, summary: "List nodes, by id", meta: true,
			query: []param{
				{"ring", intSchema(0, 2), "only nodes of this ring"},
				{"state", map[string]any{"type": "string", "enum": nodeStates}, "only nodes ring 0 judges in this state"},
				{"after", strSchema, "paging: only nodes with ids after this one (the previous page's next)"},
				{"limit", intSchema(1, 10000), "at most this many nodes (default 1000)"},
			}, status: http.StatusOK, out: nodeList{}, serve: a.listNodes},
		{method: "POST", path: "/v1/nodes", access: admin, summary: "Register a node (for example an external ring 1 node, before issuing it a join token)",
			body: &nodeCreate{}, status: http.StatusCreated, out: inventory.Node{}, serve: a.createNode},
		{method: "GET", path: "/v1/nodes/{node}", access: reader, summary: "A node: strategies, state, last observation, tiers; ETag is its version",
			status: http.StatusOK, out: inventory.Node{}, serve: a.getNode},
		{method: "PATCH", path: "/v1/nodes/{node}", access: admin, summary: "Change a node's label or metadata",
			ifMatch: mustMatch, body: &nodePatch{}, status: http.StatusOK, out: inventory.Node{}, serve: a.patchNode},
		{method: "DELETE", path: "/v1/nodes/{node}", access: admin, summary: "Decommission a ring 1 node for good: revoke every bus credential issued for it (its connections close), refuse its observations, mark it decommissioned; 409 while it hosts tenants or this ring 0 runs it itself",
			ifMatch: mustMatch, status: http.StatusOK, out: inventory.Node{}, serve: a.decommissionNode},
		{method: "GET", path: "/v1/nodes/{node}/observations", access: reader, summary: "A node's signed observations, newest first, with what is needed to verify them offline",
			query: []param{
				{"limit", intSchema(1, 1000), "at most this many (default 100)"},
				{"before", map[string]any{"type": "integer", "minimum": 1}, "paging: only sequence numbers below this"},
			}, status: http.StatusOK, out: observationList{}, serve: a.observations},
		{method: "GET", path: "/v1/observations/latest", access: reader, summary: "Every node's newest signed observation, checked here as `enjin verify` checks offline (signed by a key its signer, the node or the ring 1 node observing it, has had): verified, or why not",
			status: http.StatusOK, out: latestList{}, serve: a.latestObservations},
		{method: "POST", path: "/v1/nodes/{node}/join-token", access: admin, summary: "Issue a one-time join token for an external node",
			body: &joinTokenBody{}, optional: true, status: http.StatusCreated, out: joinToken{}, serve: a.joinToken},
		{method: "POST", path: "/v1/nodes/{node}/hosts", access: admin, summary: "Start a new ring 1 host as a VM on ring 1 node {node} (the libvirt strategy): it joins with a one-time token handed to it in its metadata, and is a node like any other; 201 with its node record once the VM runs (poll it for up). Decommissioning it destroys the VM",
			body: &HostCreate{}, status: http.StatusCreated, out: inventory.Node{}, serve: a.growHost},
		{method: "GET", path: "/v1/nodes/{node}/console", access: reader, summary: "The last part of the serial console of a ring 1 host run as a VM",
			status: http.StatusOK, out: consoleText{}, serve: a.hostConsole},
		{method: "POST", path: "/v1/join", access: public, summary: "Redeem a join token (the token is the credential) for the node's bus identity",
			body: &joinBody{}, status: http.StatusOK, out: JoinResult{}, serve: a.join},
		{method: "POST", path: "/v1/creds/ops", access: admin, summary: "A .creds file for an operator watching ops.> with the nats CLI",
			body: &opsCredsBody{}, status: http.StatusOK, out: opsCreds{}, serve: a.opsCreds},

		{method: "GET", path: "/v1/compartments", access: reader, summary: "List compartments, by label", meta: true,
			status: http.StatusOK, out: compartmentList{}, serve: a.listCompartments},
		{method: "POST", path: "/v1/compartments", access: admin, summary: "Create a compartment; its parents must not make a cycle",
			body: &compartmentCreate{}, status: http.StatusCreated, out: inventory.Compartment{}, serve: a.createCompartment},
		{method: "GET", path: "/v1/compartments/{compartment}", access: reader, summary: "A compartment; ETag is its version",
			status: http.StatusOK, out: inventory.Compartment{}, serve: a.getCompartment},
		{method: "GET", path: "/v1/compartments/{compartment}/usage", access: reader, summary: "What the nodes in a compartment and below it use, summed from each one's newest signed observation of itself: CPU (cores busy), memory, app instances and VMs, and the memory they offer VMs; by node too",
			status: http.StatusOK, out: compartmentUsage{}, serve: a.compartmentUsage},
		{method: "PATCH", path: "/v1/compartments/{compartment}", access: admin, summary: "Change a compartment; its parents must not make a cycle",
			ifMatch: mustMatch, body: &compartmentPatch{}, status: http.StatusOK, out: inventory.Compartment{}, serve: a.patchCompartment},
		{method: "DELETE", path: "/v1/compartments/{compartment}", access: admin, summary: "Delete a compartment; nodes in it keep running, with none",
			ifMatch: mustMatch, status: http.StatusNoContent, serve: a.deleteCompartment},

		{method: "GET", path: "/v1/tiers", access: reader, summary: "List tiers, by label", meta: true,
			status: http.StatusOK, out: tierList{}, serve: a.listTiers},
		{method: "POST", path: "/v1/tiers", access: admin, summary: "Create a tier",
			body: &tierCreate{}, status: http.StatusCreated, out: inventory.Tier{}, serve: a.createTier},
		{method: "GET", path: "/v1/tiers/{tier}", access: reader, summary: "A tier and its members; ETag is its version",
			status: http.StatusOK, out: inventory.Tier{}, serve: a.getTier},
		{method: "PATCH", path: "/v1/tiers/{tier}", access: admin, summary: "Change a tier's label, replica count or metadata",
			ifMatch: mustMatch, body: &tierPatch{}, status: http.StatusOK, out: inventory.Tier{}, serve: a.patchTier},
		{method: "DELETE", path: "/v1/tiers/{tier}", access: admin, summary: "Delete a tier",
			ifMatch: mustMatch, status: http.StatusNoContent, serve: a.deleteTier},
		{method: "PUT", path: "/v1/tiers/{tier}/members/{node}", access: admin, summary: "Put a node in a tier as primary or replica; a second primary is refused",
			ifMatch: mayMatch, body: &memberPut{}, status: http.StatusOK, out: inventory.Tier{}, serve: a.putMember},
		{method: "DELETE", path: "/v1/tiers/{tier}/members/{node}", access: admin, summary: "Take a node out of a tier",
			ifMatch: mayMatch, status: http.StatusOK, out: inventory.Tier{}, serve: a.deleteMember},
		{method: "POST", path: "/v1/tiers/{tier}/promote", access: admin, summary: "Promote a replica to primary in one transaction; stale if failed is no longer the primary",
			ifMatch: mayMatch, body: &promoteBody{}, optional: true, status: http.StatusOK, out: inventory.Promotion{}, serve: a.promote},

		{method: "GET", path: "/v1/tenants", access: reader, summary: "List tenants, by id",
			status: http.StatusOK, out: tenantList{}, serve: a.listTenants},
		{method: "POST", path: "/v1/tenants", access: admin, summary: "Create a tenant: its NATS account and a scoped signing key on the ring 1 node that hosts it",
			body: &tenantCreate{}, status: http.StatusCreated, out: inventory.Tenant{}, serve: a.createTenant},
		{method: "GET", path: "/v1/tenants/{tenant}", access: reader, summary: "A tenant and its hosts; ETag is its version",
			tenantOK: true, status: http.StatusOK, out: inventory.Tenant{}, serve: a.getTenant},
		{method: "POST", path: "/v1/tenants/{tenant}/tokens", access: admin, summary: "Issue a bearer token that speaks for the tenant, for its own apps only",
			body: &tokenBody{}, status: http.StatusCreated, out: tenantToken{}, serve: a.tenantToken},
		{method: "DELETE", path: "/v1/tenants/{tenant}", access: admin, summary: "Delete a tenant: every credential of its account is revoked and the account disabled",
			ifMatch: mustMatch, status: http.StatusNoContent, serve: a.deleteTenant},
	}, slices.Concat(a.uiRoutes(), a.appRoutes(), a.imageRoutes(), a.vmRoutes(), a.networkRoutes(), a.rulesetRoutes(), a.domainRoutes(), a.backupRoutes(), []route{{method: "GET", path: "/v1/history/{kind}/{id}", access: reader, summary: "Every recorded version of a node, compartment or tier",
		status: http.StatusOK, out: historyList{}, serve: a.history}})...)
}
