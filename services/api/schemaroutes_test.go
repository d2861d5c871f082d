package api_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"testing"

	"enjin/keys"
	"enjin/services/api"
	"enjin/services/images"
	"enjin/services/inventory"
	"enjin/test/harness"
)

// TestResponseSchemas drives every route of the table, to success and to errors, against a
// real API on PostgreSQL (ring 1's app API and the VM service faked from their own types),
// and validates every answer against the schema the OpenAPI document declares for its route,
// status and content type. A route never driven, or never to both a success and an error,
// fails it.
func TestResponseSchemas(t *testing.T) {
	e := newEnvWith(t, api.Timeouts{}, schemaConfig(t))
	sc := newSchemaCheck(t, e.api)
	c := *e.client
	c.Transport = sc.transport(e.client.Transport)
	e.client = &c

	runSteps(t, e, slices.Concat(routeSteps(e), schemaSteps(t, e), backupSteps()))

	for _, b := range sc.bad {
		t.Errorf("answer does not match the document: %s", b)
	}
	routes := api.Patterns(e.api)
	for _, p := range routes {
		n := sc.seen[p]
		switch {
		case n[0] == 0 && n[1] == 0:
			t.Errorf("%s: never driven", p)
		case n[0] == 0:
			t.Errorf("%s: never driven to a success", p)
		case n[1] == 0:
			t.Errorf("%s: never driven to an error", p)
		}
	}
	bare := bareChecks(t, e)
	t.Logf("%d routes, %d answers validated (%d route/status pairs); %d more from an API without VMs, images, metrics or a sealer",
		len(routes), sc.checked, len(sc.statuses), bare)
	if sc.checked < 2*len(routes) {
		t.Errorf("%d answers validated for %d routes: want at least two a route", sc.checked, len(routes))
	}
}

// bareChecks drives the routes of VMs, volumes, host VMs, images and metrics, and putting a
// custom domain, on an API that has none of them, validating each answer (503: this ring 0
// runs no VMs, keeps no images, seals no keys; 404: no metrics), and returns how many it
// validated.
func bareChecks(t *testing.T, full *env) int {
	a, err := api.New(api.Config{Store: full.store, Ring0: full.ring0, Checkers: checkers(t), Logger: harness.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	sc := newSchemaCheck(t, a)
	e := &env{api: a, srv: srv, client: &http.Client{Transport: sc.transport(http.DefaultTransport)}, store: full.store, ring0: full.ring0}
	fill := strings.NewReplacer("{tenant}", "shapes", "{node}", "n1", "{vm}", "vm1", "{volume}", "vol1", "{mac}", "52:54:00:00:00:01",
		"{image}", inventory.NewID())
	unavailable := 0
	for _, p := range api.Patterns(e.api) {
		method, path, _ := strings.Cut(p, " ")
		if !regexp.MustCompile(`/(vms|volumes|hosts|console|images)(/|$)|^/metrics$|^/v1/backup$`).MatchString(path) {
			continue
		}
		r := e.do(t, method, fill.Replace(path), []byte(`{}`), "Authorization", asAdmin, "If-Match", `"1"`, "Content-Type", "application/json")
		if r.status == http.StatusServiceUnavailable || path == "/metrics" && r.status == http.StatusNotFound {
			unavailable++
		}
	}
	if unsealedDomain(t, e) == http.StatusServiceUnavailable {
		unavailable++
	}
	for _, b := range sc.bad {
		t.Errorf("without VMs or images, an answer does not match the document: %s", b)
	}
	if unavailable < 10 {
		t.Errorf("%d routes answered that they are unavailable here; want every VM and image route that reaches its service", unavailable)
	}
	return sc.checked
}

func schemaConfig(t *testing.T) func(*api.Config) {
	is, err := images.New(images.Config{Dir: filepath.Join(t.TempDir(), "images"), ToolTimeout: 20 * time.Second, Logger: harness.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := keys.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return func(c *api.Config) {
		c.VMs, c.Images, c.Metrics = storeVMs{c.Store}, is, prometheus.NewRegistry()
		c.Sealer, c.AppsDomain = chain, "apps.test"
		withBackup(c)
	}
}

// schemaSteps drive the routes the other steps leave out, to success and to error: the
// routes of apps, VMs, volumes, machine types, images, host VMs, metrics, usage, the newest
// observations, the web view and custom domains.
func schemaSteps(t *testing.T, e *env) []step {
	ring1 := httptest.NewServer(typedRing1(t))
	t.Cleanup(ring1.Close)
	get := func(name, path, auth string, status int) step {
		return step{name: name, method: "GET", path: path, auth: auth, status: status}
	}
	var steps []step
	add := func(s ...step) { steps = append(steps, s...) }
	add(step{name: "schemas: tenant", method: "POST", path: "/v1/tenants", auth: asAdmin, body: `{"name":"shapes"}`, status: 201},
		step{name: "schemas: VM node", method: "POST", path: "/v1/nodes", auth: asAdmin, status: 201,
			body: `{"id":"` + vmNode + `","ring":1,"supervision_strategy":"process","observation_strategy":"self"}`},
		step{name: "schemas: tenant network", method: "POST", path: "/v1/tenants/shapes/networks", auth: asAdmin, body: `{"name":"lan","cidr4":"100.70.0.0/24"}`, status: 201},
		get("metrics", "/metrics", asBob, 200),
		get("metrics without a token", "/metrics", "", 401),
		get("document with a query it does not take", "/openapi.json?x=1", "", 400),
		get("tiers without a token", "/v1/tiers", "", 401),
		get("networks without a token", "/v1/tenants/shapes/networks", "", 401),
		get("rule sets without a token", "/v1/tenants/shapes/rulesets", "", 401),
		get("usage", "/v1/compartments/{c1}/usage", asBob, 200),
		get("usage of no compartment", "/v1/compartments/{nouuid}/usage", asBob, 404),
		step{name: "grow a host VM", method: "POST", path: "/v1/nodes/" + vmNode + "/hosts", auth: asAdmin, body: `{"image":"ring1","machine_type":"small","label":"h1"}`, status: 201},
		step{name: "grow a host VM of no machine type", method: "POST", path: "/v1/nodes/" + vmNode + "/hosts", auth: asAdmin, body: `{"image":"ring1","machine_type":"No Such"}`, status: 422},
		get("host VM console", "/v1/nodes/"+vmNode+"-h1/console", asBob, 200),
		get("console of no host", "/v1/nodes/nope/console", asBob, 404),
	)
	add(latestSteps()...)
	add(uiSteps()...)
	add(domainSteps(t, e)...)
	add(machineTypeSteps()...)
	add(vmSteps()...)
	add(imageSteps(t)...)
	add(appSteps(e, ring1.URL)...)
	add(realAppSteps(t, e, realRing1(t))...)
	return steps
}

func machineTypeSteps() []step {
	return []step{
		{name: "machine type", method: "POST", path: "/v1/machine-types", auth: asAdmin, body: `{"name":"schema-xs","vcpus":1,"memory_mb":256,"disk_gb":1}`, status: 201},
		{name: "machine type again", method: "POST", path: "/v1/machine-types", auth: asAdmin, body: `{"name":"schema-xs","vcpus":1,"memory_mb":256,"disk_gb":1}`, status: 409},
		{name: "machine types", method: "GET", path: "/v1/machine-types", auth: asBob, status: 200},
		{name: "machine types without a token", method: "GET", path: "/v1/machine-types", status: 401},
	}
}

func vmSteps() []step {
	t := "/v1/tenants/shapes"
	vm := t + "/vms/vm1"
	m := func(tag string) []string { return []string{"If-Match", tag} }
	return []step{
		{name: "VM", method: "POST", path: t + "/vms", auth: asAdmin, status: 201, save: map[string]string{"ve": "@etag"},
			body: `{"name":"vm1","image":"guest","machine_type":"small","networks":["lan"],"rulesets":[],"ssh_keys":["ssh-ed25519 AAAA k"],"user_data":"#!/bin/sh"}`},
		{name: "VM named badly", method: "POST", path: t + "/vms", auth: asAdmin, body: `{"name":"VM 1","image":"guest","machine_type":"small"}`, status: 422},
		{name: "VMs", method: "GET", path: t + "/vms", auth: asBob, status: 200},
		{name: "VMs without a token", method: "GET", path: t + "/vms", status: 401},
		{name: "a VM", method: "GET", path: vm, auth: asBob, status: 200},
		{name: "no VM", method: "GET", path: t + "/vms/nope", auth: asBob, status: 404},
		{name: "stop the VM", method: "PATCH", path: vm, auth: asAdmin, hdr: m("{ve}"), body: `{"state":"stopped"}`, status: 200, save: map[string]string{"ve": "@etag"}},
		{name: "stop the VM without If-Match", method: "PATCH", path: vm, auth: asAdmin, body: `{"state":"stopped"}`, status: 428},
		{name: "reboot the VM", method: "POST", path: vm + "/reboot", auth: asAdmin, status: 200},
		{name: "reboot no VM", method: "POST", path: t + "/vms/nope/reboot", auth: asAdmin, status: 404},
		{name: "add a NIC", method: "POST", path: vm + "/nics", auth: asAdmin, hdr: m("{ve}"), body: `{"network":"lan"}`, status: 200, save: map[string]string{"ve": "@etag"}},
		{name: "add a NIC stale", method: "POST", path: vm + "/nics", auth: asAdmin, hdr: m(`"99"`), body: `{"network":"lan"}`, status: 409},
		{name: "remove the NIC", method: "DELETE", path: vm + "/nics/52:54:00:00:01:01", auth: asAdmin, hdr: m("{ve}"), status: 200, save: map[string]string{"ve": "@etag"}},
		{name: "remove a NIC of no MAC", method: "DELETE", path: vm + "/nics/zz", auth: asAdmin, hdr: m("{ve}"), status: 400},
		{name: "VM console", method: "GET", path: vm + "/console", auth: asBob, status: 200},
		{name: "console of no VM", method: "GET", path: t + "/vms/nope/console", auth: asBob, status: 404},
		{name: "volume", method: "POST", path: t + "/volumes", auth: asAdmin, body: `{"name":"vol1","size_gb":1}`, status: 201, save: map[string]string{"vo": "@etag"}},
		{name: "volume of no size", method: "POST", path: t + "/volumes", auth: asAdmin, body: `{"name":"vol2","size_gb":0}`, status: 422},
		{name: "volumes", method: "GET", path: t + "/volumes", auth: asBob, status: 200},
		{name: "volumes without a token", method: "GET", path: t + "/volumes", status: 401},
		{name: "a volume", method: "GET", path: t + "/volumes/vol1", auth: asBob, status: 200},
		{name: "no volume", method: "GET", path: t + "/volumes/nope", auth: asBob, status: 404},
		{name: "attach the volume", method: "PUT", path: t + "/volumes/vol1/attachment", auth: asAdmin, hdr: m("{vo}"), body: `{"vm":"vm1"}`, status: 200, save: map[string]string{"vo": "@etag"}},
		{name: "detach the volume", method: "PUT", path: t + "/volumes/vol1/attachment", auth: asAdmin, hdr: m("{vo}"), body: `{"vm":""}`, status: 200, save: map[string]string{"vo": "@etag"}},
		{name: "attach without If-Match", method: "PUT", path: t + "/volumes/vol1/attachment", auth: asAdmin, body: `{"vm":"vm1"}`, status: 428},
		{name: "delete the volume without If-Match", method: "DELETE", path: t + "/volumes/vol1", auth: asAdmin, status: 428},
		{name: "delete the volume", method: "DELETE", path: t + "/volumes/vol1", auth: asAdmin, hdr: m("{vo}"), status: 204},
		{name: "delete the VM stale", method: "DELETE", path: vm, auth: asAdmin, hdr: m(`"99"`), status: 409},
		{name: "delete the VM", method: "DELETE", path: vm, auth: asAdmin, hdr: m("{ve}"), status: 204},
	}
}

func imageSteps(t *testing.T) []step {
	_, disk := rawDisk(t, 7)
	form, ct := multipartForm(t, [][2]string{{"kernel", string(bzImage())}, {"initrd", string(gzipped("070701"))}})
	octet := []string{"Content-Type", "application/octet-stream"}
	return []step{
		{name: "image", method: "POST", path: "/v1/images?name=disk&format=raw", auth: asAdmin, hdr: octet, body: string(disk), status: 201, save: map[string]string{"img": "id"}},
		{name: "image of no format", method: "POST", path: "/v1/images?name=disk2", auth: asAdmin, hdr: octet, body: string(disk), status: 400},
		{name: "kernel image", method: "POST", path: "/v1/images/kernel?name=vmlinuz", auth: asAdmin, hdr: []string{"Content-Type", ct}, body: string(form), status: 201, save: map[string]string{"kimg": "id"}},
		{name: "kernel image of one part", method: "POST", path: "/v1/images/kernel?name=vmlinuz2", auth: asAdmin, hdr: []string{"Content-Type", ct}, body: string(form[:len(form)/3]), status: 400},
		{name: "images", method: "GET", path: "/v1/images", auth: asBob, status: 200},
		{name: "images public=7", method: "GET", path: "/v1/images?public=7", auth: asBob, status: 400},
		{name: "an image", method: "GET", path: "/v1/images/{img}", auth: asBob, status: 200},
		{name: "no image", method: "GET", path: "/v1/images/{nouuid}", auth: asBob, status: 404},
		{name: "image content", method: "GET", path: "/v1/images/{img}/content", auth: asAdmin, status: 200},
		{name: "kernel content without part", method: "GET", path: "/v1/images/{kimg}/content", auth: asAdmin, status: 400},
		{name: "delete the image", method: "DELETE", path: "/v1/images/{img}", auth: asAdmin, status: 204},
		{name: "delete it again", method: "DELETE", path: "/v1/images/{img}", auth: asAdmin, status: 404},
	}
}

// appSteps drive the app routes through ring 0 to typedRing1 at url.
func appSteps(e *env, url string) []step {
	p := "/v1/tenants/shapes/apps"
	gz := []string{"Content-Type", "application/gzip"}
	return []step{
		{name: "apps", method: "GET", path: p, auth: asBob, status: 200, before: func(*testing.T, map[string]string) { e.ring0.apps = url }},
		{name: "apps without a token", method: "GET", path: p, status: 401},
		{name: "deploy", method: "POST", path: p + "/shop/releases", auth: asAdmin, hdr: gz, body: "bundle", status: 201},
		{name: "deploy, as it happens", method: "POST", path: p + "/shop/releases", auth: asAdmin, hdr: append([]string{"Accept", "application/x-ndjson"}, gz...), body: "bundle", status: 200},
		{name: "deploy refused by ring 1", method: "POST", path: p + "/shop/releases?delta=1", auth: asAdmin, hdr: gz, body: "bundle", status: 422, code: "invalid"},
		{name: "releases", method: "GET", path: p + "/shop/releases", auth: asBob, status: 200},
		{name: "releases of no app", method: "GET", path: p + "/missing/releases", auth: asBob, status: 404, code: "not_found"},
		{name: "files", method: "POST", path: p + "/shop/files", auth: asAdmin, body: `{"digests":["sha256-ab"]}`, status: 200},
		{name: "files, ring 1 failing in plain text", method: "POST", path: p + "/plain/files", auth: asAdmin, body: `{"digests":[]}`, status: 500, code: "ring1_error"},
		{name: "rollback", method: "POST", path: p + "/shop/rollback", auth: asAdmin, body: `{"release":1}`, status: 200},
		{name: "rollback of no app", method: "POST", path: p + "/missing/rollback", auth: asAdmin, body: `{"release":1}`, status: 404},
		{name: "instances", method: "GET", path: p + "/shop/instances", auth: asBob, status: 200},
		{name: "instances of no app", method: "GET", path: p + "/missing/instances", auth: asBob, status: 404},
		{name: "scale", method: "PUT", path: p + "/shop/scale/web", auth: asAdmin, body: `{"instances":1}`, status: 200},
		{name: "scale a bad type", method: "PUT", path: p + "/shop/scale/Web!", auth: asAdmin, body: `{"instances":1}`, status: 400},
		{name: "env", method: "GET", path: p + "/shop/env", auth: asBob, status: 200},
		{name: "env values for a reader", method: "GET", path: p + "/shop/env?reveal=1", auth: asBob, status: 403},
		{name: "replace env", method: "PUT", path: p + "/shop/env", auth: asAdmin, body: `{"env":{"A":"1"}}`, status: 200},
		{name: "replace env, ring 1 refusing ring 0", method: "PUT", path: p + "/locked/env", auth: asAdmin, body: `{"env":{}}`, status: 502, code: "ring1_unavailable"},
		{name: "change env", method: "PATCH", path: p + "/shop/env", auth: asAdmin, body: `{"set":{"A":"2"},"unset":["B"]}`, status: 200},
		{name: "change env as a reader", method: "PATCH", path: p + "/shop/env", auth: asBob, body: `{"set":{}}`, status: 403},
		{name: "run a job", method: "POST", path: p + "/shop/run", auth: asAdmin, body: `{"command":"true"}`, status: 200},
		{name: "run a job in no app", method: "POST", path: p + "/missing/run", auth: asAdmin, body: `{"command":"true"}`, status: 404},
		{name: "cron", method: "GET", path: p + "/shop/cron", auth: asBob, status: 200},
		{name: "cron of no app", method: "GET", path: p + "/missing/cron", auth: asBob, status: 404},
		{name: "logs", method: "GET", path: p + "/shop/logs?lines=5", auth: asBob, status: 200},
		{name: "logs of no app", method: "GET", path: p + "/missing/logs", auth: asBob, status: 404},
		{name: "destroy", method: "DELETE", path: p + "/shop", auth: asAdmin, status: 204},
		{name: "destroy no app", method: "DELETE", path: p + "/missing", auth: asAdmin, status: 404},
	}
}
