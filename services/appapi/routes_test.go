package appapi_test

import (
	"net/http"
	"strings"
	"testing"

	"enjin/services/appapi"
)

// TestRouteTable checks the table itself: one route an operation, every operation routed,
// patterns net/http takes without conflict, only the wildcards both sides check, a JSON
// body type only for a JSON body, and a success status for each.
func TestRouteTable(t *testing.T) {
	ops := []appapi.Op{appapi.OpApps, appapi.OpDeploy, appapi.OpReleases, appapi.OpFiles, appapi.OpRollback,
		appapi.OpInstances, appapi.OpScale, appapi.OpEnv, appapi.OpPutEnv, appapi.OpPatchEnv, appapi.OpDestroy,
		appapi.OpRun, appapi.OpCron, appapi.OpLogs, appapi.OpRunning, appapi.OpExport, appapi.OpImport, appapi.OpShare}
	routes := appapi.Routes()
	if len(routes) != len(ops) {
		t.Errorf("%d routes for %d operations", len(routes), len(ops))
	}
	seen := map[appapi.Op]bool{}
	mux := http.NewServeMux()
	for _, r := range routes {
		if seen[r.Op] {
			t.Errorf("%s: routed twice", r.Op)
		}
		seen[r.Op] = true
		func() {
			defer func() {
				if v := recover(); v != nil {
					t.Errorf("%s: net/http refuses %q: %v", r.Op, r.Pattern(), v)
				}
			}()
			mux.Handle(r.Pattern(), http.NotFoundHandler())
		}()
		for _, seg := range strings.Split(r.Path, "/") {
			if strings.HasPrefix(seg, "{") && seg != "{tenant}" && seg != "{app}" && seg != "{proctype}" {
				t.Errorf("%s: wildcard %s: want {tenant}, {app} or {proctype}", r.Op, seg)
			}
		}
		if r.In != nil && r.Body != "application/json" {
			t.Errorf("%s: body type %T with content type %q: want application/json", r.Op, r.In, r.Body)
		}
		if r.Status < 200 || r.Status > 299 || r.Summary == "" {
			t.Errorf("%s: status %d, summary %q: want a 2xx and a summary", r.Op, r.Status, r.Summary)
		}
		if r.Status == http.StatusNoContent && (r.Out != nil || r.Lines != nil) {
			t.Errorf("%s: 204 with an answer", r.Op)
		}
	}
	for _, op := range ops {
		if !seen[op] {
			t.Errorf("%s: no route", op)
		}
	}
}

// TestOpPath fills in each wildcard, escaped, and panics on a wrong count of values.
func TestOpPath(t *testing.T) {
	for _, c := range []struct {
		op   appapi.Op
		vals []string
		want string
	}{
		{appapi.OpApps, []string{"acme"}, "/v1/tenants/acme/apps"},
		{appapi.OpDestroy, []string{"acme", "shop"}, "/v1/tenants/acme/apps/shop"},
		{appapi.OpScale, []string{"acme", "shop", "web"}, "/v1/tenants/acme/apps/shop/scale/web"},
		{appapi.OpScale, []string{"acme", "shop", "a/b c"}, "/v1/tenants/acme/apps/shop/scale/a%2Fb%20c"},
		{appapi.OpRunning, nil, "/v1/running"},
	} {
		if got := c.op.Path(c.vals...); got != c.want {
			t.Errorf("%s.Path(%q) = %q, want %q", c.op, c.vals, got, c.want)
		}
	}
	for _, c := range []struct {
		op   appapi.Op
		vals []string
	}{{appapi.OpScale, []string{"acme", "shop"}}, {appapi.OpApps, []string{"acme", "shop"}}, {"nope", nil}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s.Path(%q) did not panic", c.op, c.vals)
				}
			}()
			c.op.Path(c.vals...)
		}()
	}
}
