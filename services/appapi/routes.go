package appapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Op names an app operation. Ring 1 looks up its handler by it, ring 0 its forwarding and
// its OpenAPI entry, the CLI its path.
type Op string

// The app operations. The last four, after a blank line, are ring 0's alone: its meta API
// forwards no caller's request to them.
const (
	OpApps      Op = "apps"
	OpDeploy    Op = "deploy"
	OpReleases  Op = "releases"
	OpFiles     Op = "files"
	OpRollback  Op = "rollback"
	OpInstances Op = "instances"
	OpScale     Op = "scale"
	OpEnv       Op = "env"
	OpPutEnv    Op = "put-env"
	OpPatchEnv  Op = "patch-env"
	OpDestroy   Op = "destroy" // with retire=1, ring 0's alone: destroy, keeping HOME aside (apphost's Retire)
	OpRun       Op = "run"
	OpCron      Op = "cron"
	OpLogs      Op = "logs"

	OpRunning Op = "running"
	OpExport  Op = "export"
	OpImport  Op = "import"
	OpShare   Op = "share"
)

// Route is one app operation as both sides of the wire and the CLI know it.
type Route struct {
	Op      Op
	Method  string
	Path    string  // a net/http pattern's path; its wildcards are {tenant}, {app} and {proctype}
	Summary string  // what it does, for the OpenAPI document
	Query   []Param // the query parameters ring 0 takes and passes on
	Body    string  // the content type of its request body; "": none
	In      any     // a value of its JSON request body's type, if it has one
	Status  int     // its success status
	Out     any     // a value of its JSON answer's type; nil: no content, or Lines
	Lines   []any   // an application/x-ndjson answer: values of its lines' types
	Ring0   bool    // ring 0 calls it itself, to move apps between hosts: its meta API serves no caller it
}

// Pattern is the route's net/http pattern, "METHOD path".
func (r Route) Pattern() string { return r.Method + " " + r.Path }

// Param is a documented query parameter: a string, or an integer (from Min to Max, if Max
// is not 0).
type Param struct {
	Name     string
	Doc      string
	Integer  bool
	Min, Max int
}

const apps = "/v1/tenants/{tenant}/apps"

// routes is the table. Keep each summary true of what apphost does and ring 0 forwards.
var routes = []Route{
	{Op: OpApps, Method: "GET", Path: apps, Summary: "List the tenant's apps, on every node hosting them: each once, with the node it lives on (node) and every node running its instances (nodes)",
		Status: http.StatusOK, Out: AppList{}},
	{Op: OpDeploy, Method: "POST", Path: apps + "/{app}/releases", Summary: "Deploy a bundle (the body: a gzipped tar with a Procfile) as the app's next release; 422 if it is not healthy within 60 s (rolled back). An app's first deploy places it on a ring 1 node: node=ID (the admin only) names one, which then hosts the tenant too",
		Query: []Param{{Name: "package", Doc: "deploy again, with no body, a package (sha256-… of its uncompressed tar) one of the app's releases was made of; 404 if it has none"},
			{Name: "delta", Integer: true, Min: 1, Max: 1, Doc: "1: the bundle's files that the app's releases have (see POST …/files) are references, sent without content"}},
		Body: "application/gzip", Status: http.StatusCreated, Out: Release{}, Lines: []any{Event{}}},
	{Op: OpReleases, Method: "GET", Path: apps + "/{app}/releases", Summary: "The app's releases",
		Status: http.StatusOK, Out: ReleaseList{}},
	{Op: OpFiles, Method: "POST", Path: apps + "/{app}/files", Summary: `Which of these file digests the app's releases have, so a deploy need not send them: {"digests": ["sha256-…"]} → {"have": [...]}`,
		Body: "application/json", In: FilesQuery{}, Status: http.StatusOK, Out: Files{}},
	{Op: OpRollback, Method: "POST", Path: apps + "/{app}/rollback", Summary: `Make an earlier release live again: {"release": n}`,
		Body: "application/json", In: Rollback{}, Status: http.StatusOK, Out: Release{}},
	{Op: OpInstances, Method: "GET", Path: apps + "/{app}/instances", Summary: "The app's instances: node, address, port, state, restarts; and, for an app spread over several hosts, the host each runs on",
		Status: http.StatusOK, Out: InstanceList{}},
	{Op: OpScale, Method: "PUT", Path: apps + "/{app}/scale/{proctype}", Summary: `Run n instances of a process type: {"instances": n}`,
		Body: "application/json", In: Scale{}, Status: http.StatusOK, Out: InstanceList{}},
	{Op: OpEnv, Method: "GET", Path: apps + "/{app}/env", Summary: "The app's environment: its variables' names, and their values with reveal=1",
		Query:  []Param{{Name: "reveal", Integer: true, Min: 0, Max: 1, Doc: "1 returns values; only the admin and the tenant may"}},
		Status: http.StatusOK, Out: Env{}},
	{Op: OpPutEnv, Method: "PUT", Path: apps + "/{app}/env", Summary: `Replace the app's environment: {"env": {...}}; makes a new release`,
		Body: "application/json", In: EnvPut{}, Status: http.StatusOK, Out: Release{}},
	{Op: OpPatchEnv, Method: "PATCH", Path: apps + "/{app}/env", Summary: `Change some variables, keep the rest: {"set": {...}, "unset": [...]}; makes a new release`,
		Body: "application/json", In: EnvPatch{}, Status: http.StatusOK, Out: Release{}},
	{Op: OpDestroy, Method: "DELETE", Path: apps + "/{app}", Summary: "Destroy the app: stop its instances, delete its releases",
		Status: http.StatusNoContent},
	{Op: OpRun, Method: "POST", Path: apps + "/{app}/run", Summary: `Run a one-off job in a sandbox of the app: {"command": "…"} (sh -c), with its live release, environment, limits, HOME and networks, routed to by nobody; its output streams back as newline-delimited JSON log lines, then {"exit": n}. Ending the request stops it`,
		Body: "application/json", In: Job{}, Status: http.StatusOK, Lines: []any{LogLine{}, JobEnd{}}},
	{Op: OpCron, Method: "GET", Path: apps + "/{app}/cron", Summary: "The app's scheduled jobs (enjin.json cron) as its home host runs them: schedule, command, next run, how the last run went (exit status, error, duration), runs and skipped runs",
		Status: http.StatusOK, Out: CronList{}},
	{Op: OpLogs, Method: "GET", Path: apps + "/{app}/logs", Summary: "The app's log lines as newline-delimited JSON; follow=1 streams new ones. For an app spread over hosts, every host's, oldest first, each naming its host",
		Query: []Param{{Name: "lines", Integer: true, Min: 1, Max: 10000, Doc: "how many past lines (default 100)"},
			{Name: "follow", Integer: true, Min: 0, Max: 1, Doc: "1: keep streaming"}},
		Status: http.StatusOK, Lines: []any{LogLine{}}},

	{Op: OpRunning, Method: "GET", Path: "/v1/running", Summary: "Every app with a live release on this host (apphost's Running)",
		Status: http.StatusOK, Ring0: true},
	{Op: OpExport, Method: "GET", Path: apps + "/{app}/export", Summary: "The app's recipe and package, as a tar (apphost's Export)",
		Query: []Param{{Name: "have", Doc: "the package digest the caller has already: the tar leaves it out"}}, Status: http.StatusOK, Ring0: true},
	{Op: OpImport, Method: "POST", Path: apps + "/{app}/import", Summary: "Run an exported app here (apphost's Import): share slot of of of its instances; 409 if it is here; with follow=1, a new release of a copy here (Follow)",
		Query: []Param{{Name: "slot", Integer: true}, {Name: "of", Integer: true}, {Name: "follow", Integer: true, Min: 0, Max: 1}},
		Body:  "application/x-tar", Status: http.StatusCreated, Out: Release{}, Ring0: true},
	{Op: OpShare, Method: "PUT", Path: apps + "/{app}/share", Summary: `Run share slot of of of the app's instances at these counts: {"scale": {...}, "slot": s, "of": n} (apphost's Spread)`,
		Body: "application/json", Status: http.StatusNoContent, Ring0: true},
}

// Routes returns the table of app operations, in a fresh slice.
func Routes() []Route {
	out := make([]Route, len(routes))
	copy(out, routes)
	return out
}

// Route returns op's route. An op not in the table is a programming error: it panics.
func (op Op) Route() Route {
	for _, r := range routes {
		if r.Op == op {
			return r
		}
	}
	panic(fmt.Sprintf("appapi: no route for operation %q", op))
}

// Path is op's path with its wildcards, in order, set to vals, each escaped: OpScale.Path(
// "acme", "shop", "web") is /v1/tenants/acme/apps/shop/scale/web. Too few or too many vals
// is a programming error: it panics.
func (op Op) Path(vals ...string) string {
	segs := strings.Split(op.Route().Path, "/")
	n := 0
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			if n == len(vals) {
				panic(fmt.Sprintf("appapi: %s takes more than %d path values", op, len(vals)))
			}
			segs[i] = url.PathEscape(vals[n])
			n++
		}
	}
	if n != len(vals) {
		panic(fmt.Sprintf("appapi: %s takes %d path values, not %d", op, n, len(vals)))
	}
	return strings.Join(segs, "/")
}
