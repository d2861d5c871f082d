package api_test

import "strings"

func tenantSteps() []step {
	post := func(name, body string, status int, code string) step {
		return step{name: name, method: "POST", path: "/v1/tenants", auth: asAdmin, body: body, status: status, code: code}
	}
	return []step{
		{name: "create tenant", method: "POST", path: "/v1/tenants", auth: asAdmin, body: `{"name":"acme","metadata":{"plan":"gold"}}`,
			status: 201, save: map[string]string{"te": "@etag"}, check: want("id", "acme", "version", "1", "metadata.plan", "gold")},
		post("tenant exists", `{"name":"acme"}`, 409, ""),
		post("tenant name star", `{"name":"*"}`, 422, "invalid"),
		post("tenant name dotted", `{"name":"a.b"}`, 422, "invalid"),
		post("tenant name upper", `{"name":"Acme"}`, 422, "invalid"),
		post("tenant name too long", `{"name":"`+strings.Repeat("a", 64)+`"}`, 422, "invalid"),
		post("tenant name missing", `{}`, 422, "invalid"),
		post("tenant unknown field", `{"name":"x","owner":"y"}`, 400, "bad_json"),
		{name: "reader may not create a tenant", method: "POST", path: "/v1/tenants", auth: asBob, body: `{"name":"bobco"}`, status: 403},
		{name: "list tenants", method: "GET", path: "/v1/tenants", auth: asBob, status: 200, check: want("tenants.0.id", "acme")},
		{name: "get tenant", method: "GET", path: "/v1/tenants/acme", auth: asAdmin, status: 200, check: want("id", "acme")},
		{name: "get unknown tenant", method: "GET", path: "/v1/tenants/nobody", auth: asAdmin, status: 404},
		{name: "get bad tenant id", method: "GET", path: "/v1/tenants/A_B", auth: asAdmin, status: 400},
		{name: "delete tenant without If-Match", method: "DELETE", path: "/v1/tenants/acme", auth: asAdmin, status: 428},
		{name: "delete tenant stale", method: "DELETE", path: "/v1/tenants/acme", auth: asAdmin, hdr: []string{"If-Match", `"7"`}, status: 409},
		{name: "delete tenant", method: "DELETE", path: "/v1/tenants/acme", auth: asAdmin, hdr: []string{"If-Match", "{te}"}, status: 204},
		{name: "deleted tenant", method: "GET", path: "/v1/tenants/acme", auth: asAdmin, status: 404},
	}
}
