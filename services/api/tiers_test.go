package api_test

import "testing"

func tierSteps(e *env) []step {
	member := func(name, node, role string, status int, code string, hdr ...string) step {
		return step{name: name, method: "PUT", path: "/v1/tiers/{t1}/members/" + node, auth: asAdmin, hdr: hdr,
			body: `{"role":"` + role + `"}`, status: status, code: code}
	}
	return []step{
		{name: "create", method: "POST", path: "/v1/tiers", auth: asAdmin, body: `{"ring":1,"label":"db","metadata":{"app":"pg"}}`,
			status: 201, save: map[string]string{"t1": "id"}, check: func(t *testing.T, r response, v map[string]string) {
				want("replicas", "1", "members", "[]", "version", "1")(t, r, v)
				wantHeader("Location", "/v1/tiers/{t1}")(t, r, v)
			}},
		{name: "create too many replicas", method: "POST", path: "/v1/tiers", auth: asAdmin, body: `{"ring":1,"replicas":101}`, status: 422},
		{name: "create negative replicas", method: "POST", path: "/v1/tiers", auth: asAdmin, body: `{"ring":1,"replicas":-1}`, status: 422},
		{name: "create without ring", method: "POST", path: "/v1/tiers", auth: asAdmin, body: `{"label":"x"}`, status: 422},
		{name: "list", method: "GET", path: "/v1/tiers", auth: asBob, status: 200, check: count("tiers", 1)},
		{name: "list by metadata", method: "GET", path: "/v1/tiers?metadata.app=mysql", auth: asBob, status: 200, check: count("tiers", 0)},
		{name: "get", method: "GET", path: "/v1/tiers/{t1}", auth: asBob, status: 200, check: wantHeader("ETag", `"1"`)},
		{name: "get bad id", method: "GET", path: "/v1/tiers/db", auth: asBob, status: 400, code: "bad_id"},
		{name: "get missing", method: "GET", path: "/v1/tiers/{nouuid}", auth: asBob, status: 404},
		member("primary", "n1", "primary", 200, ""),
		member("replica", "n2", "replica", 200, ""),
		member("second primary", "n3", "primary", 409, "exists"),
		member("bad role", "n3", "boss", 422, "invalid"),
		member("missing node", "ghost", "replica", 404, "not_found"),
		member("bad node id", "Ghost", "replica", 400, "bad_id"),
		member("stale If-Match", "n3", "replica", 409, "conflict", "If-Match", `"1"`),
		member("current If-Match", "n3", "replica", 200, "", "If-Match", `"3"`),
		{name: "member of a missing tier", method: "PUT", path: "/v1/tiers/{nouuid}/members/n3", auth: asAdmin,
			body: `{"role":"replica"}`, status: 404},
		{name: "member by reader", method: "PUT", path: "/v1/tiers/{t1}/members/n3", auth: asBob, body: `{"role":"replica"}`, status: 403},
		{name: "remove member", method: "DELETE", path: "/v1/tiers/{t1}/members/n3", auth: asAdmin, status: 200,
			check: want("version", "5", "members.2", "")},
		{name: "remove member again", method: "DELETE", path: "/v1/tiers/{t1}/members/n3", auth: asAdmin, status: 404},
		{name: "node shows its tier", method: "GET", path: "/v1/nodes/n1", auth: asBob, status: 200,
			check: want("tiers.0.tier", "{t1}", "tiers.0.role", "primary")},
		{name: "promote names a replica", method: "POST", path: "/v1/tiers/{t1}/promote", auth: asAdmin, body: `{"failed":"n2"}`,
			status: 409, code: "conflict"},
		{name: "promote bad node", method: "POST", path: "/v1/tiers/{t1}/promote", auth: asAdmin, body: `{"failed":"N2"}`, status: 422},
		{name: "promote", method: "POST", path: "/v1/tiers/{t1}/promote", auth: asAdmin, body: `{"failed":"n1"}`, status: 200,
			before: func(t *testing.T, _ map[string]string) { ingest(t, e.store, "n3") }, // n3 up: the new replica
			check: func(t *testing.T, r response, v map[string]string) {
				want("failed", "n1", "primary", "n2", "new_replica", "n3", "epoch", "1", "tier.version", "6")(t, r, v)
				wantHeader("ETag", `"6"`)(t, r, v)
			}},
		{name: "promote stale", method: "POST", path: "/v1/tiers/{t1}/promote", auth: asAdmin, body: `{"failed":"n1"}`,
			status: 409, code: "conflict"},
		{name: "promote stale If-Match", method: "POST", path: "/v1/tiers/{t1}/promote", auth: asAdmin, hdr: []string{"If-Match", `"5"`},
			status: 409},
		{name: "promote missing tier", method: "POST", path: "/v1/tiers/{nouuid}/promote", auth: asAdmin, status: 404},
		{name: "create lonely tier", method: "POST", path: "/v1/tiers", auth: asAdmin, body: `{"ring":1,"label":"cache","replicas":0}`,
			status: 201, save: map[string]string{"t2": "id"}},
		{name: "lonely primary", method: "PUT", path: "/v1/tiers/{t2}/members/n4", auth: asAdmin, body: `{"role":"primary"}`, status: 200},
		{name: "promote without replica", method: "POST", path: "/v1/tiers/{t2}/promote", auth: asAdmin, status: 422, code: "invalid"},
		{name: "patch without If-Match", method: "PATCH", path: "/v1/tiers/{t1}", auth: asAdmin, body: `{"replicas":2}`, status: 428},
		{name: "patch", method: "PATCH", path: "/v1/tiers/{t1}", auth: asAdmin, hdr: []string{"If-Match", `"6"`}, body: `{"replicas":2}`,
			status: 200, check: want("replicas", "2", "version", "7", "label", "db")},
		{name: "patch stale", method: "PATCH", path: "/v1/tiers/{t1}", auth: asAdmin, hdr: []string{"If-Match", `"6"`}, body: `{"label":"x"}`,
			status: 409},
		{name: "patch bad replicas", method: "PATCH", path: "/v1/tiers/{t1}", auth: asAdmin, hdr: []string{"If-Match", `"7"`},
			body: `{"replicas":1000}`, status: 422},
		{name: "delete stale", method: "DELETE", path: "/v1/tiers/{t2}", auth: asAdmin, hdr: []string{"If-Match", `"1"`}, status: 409},
		{name: "delete", method: "DELETE", path: "/v1/tiers/{t2}", auth: asAdmin, hdr: []string{"If-Match", `"2"`}, status: 204},
		{name: "deleted", method: "GET", path: "/v1/tiers/{t2}", auth: asAdmin, status: 404},
		{name: "history", method: "GET", path: "/v1/history/tier/{t1}", auth: asBob, status: 200, check: count("history", 7)},
	}
}
