package api_test

// rulesetSteps: a tenant's rule sets — created, listed, read, replaced with If-Match, refused
// when a rule is malformed, reachable by the tenant's own token only, deleted.
func rulesetSteps() []step {
	p := "/v1/tenants/rsco/rulesets"
	post := func(name, body string) step {
		return step{name: name, method: "POST", path: p, auth: asAdmin, body: body, status: 422, code: "invalid"}
	}
	rule := func(r string) string { return `{"name":"bad","rules":[` + r + `]}` }
	return []step{
		{name: "create tenant for rulesets", method: "POST", path: "/v1/tenants", auth: asAdmin, body: `{"name":"rsco"}`, status: 201},
		{name: "create ruleset", method: "POST", path: p, auth: asAdmin,
			body:   `{"name":"web","rules":[{"direction":"in","protocol":"tcp","ports":"80","action":"accept","rate":100},{"direction":"out","protocol":"udp","ports":"53","remote_network":"lan","action":"drop"}]}`,
			status: 201, save: map[string]string{"re": "@etag"},
			check: want("name", "web", "rules.0.ports", "80", "rules.0.rate", "100", "rules.1.remote_network", "lan", "version", "1")},
		{name: "ruleset exists", method: "POST", path: p, auth: asAdmin, body: `{"name":"web","rules":[]}`, status: 409, code: "exists"},
		post("rule direction", rule(`{"direction":"up","protocol":"tcp","action":"accept"}`)),
		post("rule protocol", rule(`{"direction":"in","protocol":"gre","action":"accept"}`)),
		post("rule action", rule(`{"direction":"in","protocol":"tcp","action":"reject"}`)),
		post("rule ports range", rule(`{"direction":"in","protocol":"tcp","ports":"90-80","action":"accept"}`)),
		post("rule port zero", rule(`{"direction":"in","protocol":"tcp","ports":"0","action":"accept"}`)),
		post("rule ports icmp", rule(`{"direction":"in","protocol":"icmp","ports":"80","action":"accept"}`)),
		post("rule remote host bits", rule(`{"direction":"in","protocol":"tcp","remote":"100.64.0.1/10","action":"accept"}`)),
		post("rule remote garbage", rule(`{"direction":"in","protocol":"tcp","remote":"; drop","action":"accept"}`)),
		post("rule both remotes", rule(`{"direction":"in","protocol":"tcp","remote":"100.64.0.0/10","remote_network":"lan","action":"accept"}`)),
		post("rule remote network name", rule(`{"direction":"in","protocol":"tcp","remote_network":"Lan Two","action":"accept"}`)),
		post("rule remote and remote ruleset", rule(`{"direction":"in","protocol":"tcp","remote":"100.64.0.0/10","remote_ruleset":"web","action":"accept"}`)),
		post("rule remote ruleset name", rule(`{"direction":"in","protocol":"tcp","remote_ruleset":"Web Two","action":"accept"}`)),
		post("rule remote ruleset unknown", rule(`{"direction":"in","protocol":"tcp","remote_ruleset":"nope","action":"accept"}`)),
		post("rule remotes written by a tenant", rule(`{"direction":"in","protocol":"tcp","remotes":["100.64.0.1/32"],"action":"accept"}`)),
		post("rule rate out", rule(`{"direction":"out","protocol":"tcp","action":"accept","rate":5}`)),
		post("rule rate drop", rule(`{"direction":"in","protocol":"tcp","action":"drop","rate":5}`)),
		post("rule rate huge", rule(`{"direction":"in","protocol":"tcp","action":"accept","rate":2000000}`)),
		post("ruleset name bad", `{"name":"Web!","rules":[]}`),
		{name: "ruleset unknown field", method: "POST", path: p, auth: asAdmin, body: `{"name":"x","rules":[],"nft":"flush ruleset"}`, status: 400, code: "bad_json"},
		{name: "reader may not create a ruleset", method: "POST", path: p, auth: asBob, body: `{"name":"x","rules":[]}`, status: 403},
		{name: "list rulesets", method: "GET", path: p, auth: asBob, status: 200, check: want("rulesets.0.name", "web")},
		{name: "get ruleset", method: "GET", path: p + "/web", auth: asBob, status: 200, check: want("rules.0.action", "accept")},
		{name: "get unknown ruleset", method: "GET", path: p + "/nope", auth: asAdmin, status: 404},
		{name: "get bad ruleset name", method: "GET", path: p + "/A_B", auth: asAdmin, status: 400},
		{name: "update ruleset without If-Match", method: "PUT", path: p + "/web", auth: asAdmin, body: `{"rules":[]}`, status: 428},
		{name: "update ruleset stale", method: "PUT", path: p + "/web", auth: asAdmin, body: `{"rules":[]}`, hdr: []string{"If-Match", `"7"`}, status: 409},
		{name: "update ruleset bad rule", method: "PUT", path: p + "/web", auth: asAdmin, body: `{"rules":[{"direction":"in"}]}`, hdr: []string{"If-Match", "{re}"}, status: 422},
		{name: "update ruleset", method: "PUT", path: p + "/web", auth: asAdmin, hdr: []string{"If-Match", "{re}"},
			body: `{"rules":[{"direction":"in","protocol":"any","remote":"fd00::/8","action":"accept"}]}`, status: 200,
			save: map[string]string{"re2": "@etag"}, check: want("version", "2", "rules.0.remote", "fd00::/8")},
		{name: "create a ruleset naming itself", method: "POST", path: p, auth: asAdmin,
			body:   `{"name":"peers","rules":[{"direction":"in","protocol":"tcp","remote_ruleset":"peers","action":"accept"}]}`,
			status: 201, save: map[string]string{"rp": "@etag"}, check: want("rules.0.remote_ruleset", "peers")},
		{name: "create a ruleset naming another", method: "POST", path: p, auth: asAdmin,
			body:   `{"name":"admin","rules":[{"direction":"in","protocol":"tcp","ports":"22","remote_ruleset":"peers","action":"accept"}]}`,
			status: 201, save: map[string]string{"ra": "@etag"}},
		{name: "delete a ruleset another names", method: "DELETE", path: p + "/peers", auth: asAdmin, hdr: []string{"If-Match", "{rp}"}, status: 409},
		{name: "delete the ruleset naming it", method: "DELETE", path: p + "/admin", auth: asAdmin, hdr: []string{"If-Match", "{ra}"}, status: 204},
		{name: "delete a ruleset naming only itself", method: "DELETE", path: p + "/peers", auth: asAdmin, hdr: []string{"If-Match", "{rp}"}, status: 204},
		{name: "delete ruleset stale", method: "DELETE", path: p + "/web", auth: asAdmin, hdr: []string{"If-Match", "{re}"}, status: 409},
		{name: "delete ruleset", method: "DELETE", path: p + "/web", auth: asAdmin, hdr: []string{"If-Match", "{re2}"}, status: 204},
		{name: "deleted ruleset", method: "GET", path: p + "/web", auth: asAdmin, status: 404},
	}
}
