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

// tenantTokenSteps: a tenant's token reaches its own tenant and apps, and nothing else.
func tenantTokenSteps() []step {
	return []step{
		{name: "create tenant for tokens", method: "POST", path: "/v1/tenants", auth: asAdmin, body: `{"name":"tokco"}`, status: 201},
		{name: "create other tenant", method: "POST", path: "/v1/tenants", auth: asAdmin, body: `{"name":"otherco"}`, status: 201},
		{name: "issue token", method: "POST", path: "/v1/tenants/tokco/tokens", auth: asAdmin, body: `{"name":"ci"}`,
			status: 201, save: map[string]string{"tok": "token"}, check: want("tenant", "tokco")},
		{name: "reader may not issue token", method: "POST", path: "/v1/tenants/tokco/tokens", auth: asBob, body: `{}`, status: 403},
		{name: "token for unknown tenant", method: "POST", path: "/v1/tenants/nobody/tokens", auth: asAdmin, body: `{}`, status: 404},
		{name: "tenant reads itself", method: "GET", path: "/v1/tenants/tokco", hdr: []string{"Authorization", "Bearer {tok}"}, status: 200},
		{name: "tenant reads another", method: "GET", path: "/v1/tenants/otherco", hdr: []string{"Authorization", "Bearer {tok}"}, status: 403},
		{name: "tenant lists tenants", method: "GET", path: "/v1/tenants", hdr: []string{"Authorization", "Bearer {tok}"}, status: 403},
		{name: "tenant lists nodes", method: "GET", path: "/v1/nodes", hdr: []string{"Authorization", "Bearer {tok}"}, status: 403},
		{name: "tenant deletes itself", method: "DELETE", path: "/v1/tenants/tokco", hdr: []string{"Authorization", "Bearer {tok}", "If-Match", `"1"`}, status: 403},
		{name: "tenant issues tokens", method: "POST", path: "/v1/tenants/tokco/tokens", hdr: []string{"Authorization", "Bearer {tok}"}, body: `{}`, status: 403},
		{name: "tenant reaches its apps", method: "GET", path: "/v1/tenants/tokco/apps", hdr: []string{"Authorization", "Bearer {tok}"}, status: 422},
		{name: "tenant reaches another's apps", method: "GET", path: "/v1/tenants/otherco/apps", hdr: []string{"Authorization", "Bearer {tok}"}, status: 403},
		{name: "tenant deploys to another", method: "POST", path: "/v1/tenants/otherco/apps/web/releases", hdr: []string{"Authorization", "Bearer {tok}"}, body: `x`, status: 403},
		{name: "forged tenant token", method: "GET", path: "/v1/tenants/tokco", hdr: []string{"Authorization", "Bearer et_forged"}, status: 401},
		{name: "tenant lists ring 0 members", method: "GET", path: "/v1/members", hdr: []string{"Authorization", "Bearer {tok}"}, status: 403},
		{name: "tenant lists placements", method: "GET", path: "/v1/placements", hdr: []string{"Authorization", "Bearer {tok}"}, status: 403},
	}
}
