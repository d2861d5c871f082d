package api_test

// networkSteps: a tenant's networks — created, listed, read, refused when malformed or
// overlapping, reachable by the tenant's own token only, deleted with If-Match.
func networkSteps() []step {
	p := "/v1/tenants/netco/networks"
	post := func(name, body string, status int, code string) step {
		return step{name: name, method: "POST", path: p, auth: asAdmin, body: body, status: status, code: code}
	}
	return []step{
		{name: "create tenant for networks", method: "POST", path: "/v1/tenants", auth: asAdmin, body: `{"name":"netco"}`, status: 201},
		{name: "create network", method: "POST", path: p, auth: asAdmin, body: `{"name":"net1","cidr4":"100.77.0.0/24","prefix6":"fd00:77::/64","dhcp":true}`,
			status: 201, save: map[string]string{"ne": "@etag"},
			check: want("name", "net1", "cidr4", "100.77.0.0/24", "gateway4", "100.77.0.1", "prefix6", "fd00:77::/64", "dhcp", "true", "nat", "false", "vni", "4096")},
		{name: "create network with NAT", method: "POST", path: p, auth: asAdmin, body: `{"name":"wan","cidr4":"100.76.0.0/24","nat":true}`,
			status: 201, check: want("name", "wan", "nat", "true", "gateway4", "100.76.0.1")},
		post("network nat not a boolean", `{"name":"wan2","cidr4":"100.75.0.0/24","nat":"yes"}`, 400, "bad_json"),
		post("network exists", `{"name":"net1","cidr4":"100.78.0.0/24"}`, 409, "exists"),
		post("network overlaps", `{"name":"net2","cidr4":"100.77.0.0/16"}`, 422, "invalid"),
		post("network cidr4 missing", `{"name":"net2"}`, 422, "invalid"),
		post("network cidr4 not a block", `{"name":"net2","cidr4":"100.78.0.0"}`, 422, "invalid"),
		post("network cidr4 host bits", `{"name":"net2","cidr4":"100.78.0.5/24"}`, 422, "invalid"),
		post("network cidr4 IPv6", `{"name":"net2","cidr4":"fd00::/64"}`, 422, "invalid"),
		post("network cidr4 /30", `{"name":"net2","cidr4":"100.78.0.0/30"}`, 422, "invalid"),
		post("network gateway outside", `{"name":"net2","cidr4":"100.78.0.0/24","gateway":"100.79.0.1"}`, 422, "invalid"),
		post("network gateway broadcast", `{"name":"net2","cidr4":"100.78.0.0/24","gateway":"100.78.0.255"}`, 422, "invalid"),
		post("network prefix6 /48", `{"name":"net2","cidr4":"100.78.0.0/24","prefix6":"fd00:78::/48"}`, 422, "invalid"),
		post("network name bad", `{"name":"Net 2","cidr4":"100.78.0.0/24"}`, 422, "invalid"),
		post("network named as the node's own", `{"name":"default","cidr4":"100.78.0.0/24"}`, 422, "invalid"),
		post("network unknown field", `{"name":"net2","cidr4":"100.78.0.0/24","vni":7}`, 400, "bad_json"),
		{name: "reader may not create a network", method: "POST", path: p, auth: asBob, body: `{"name":"net3","cidr4":"100.79.0.0/24"}`, status: 403},
		{name: "network for unknown tenant", method: "POST", path: "/v1/tenants/nobody/networks", auth: asAdmin,
			body: `{"name":"net1","cidr4":"100.77.0.0/24"}`, status: 404},
		{name: "list networks", method: "GET", path: p, auth: asBob, status: 200, check: want("networks.0.name", "net1")},
		{name: "get network", method: "GET", path: p + "/net1", auth: asBob, status: 200, check: want("vni", "4096")},
		{name: "get unknown network", method: "GET", path: p + "/nope", auth: asAdmin, status: 404},
		{name: "get bad network name", method: "GET", path: p + "/A_B", auth: asAdmin, status: 400},
		{name: "delete network without If-Match", method: "DELETE", path: p + "/net1", auth: asAdmin, status: 428},
		{name: "delete network stale", method: "DELETE", path: p + "/net1", auth: asAdmin, hdr: []string{"If-Match", `"7"`}, status: 409},
		{name: "delete network", method: "DELETE", path: p + "/net1", auth: asAdmin, hdr: []string{"If-Match", "{ne}"}, status: 204},
		{name: "deleted network", method: "GET", path: p + "/net1", auth: asAdmin, status: 404},
	}
}
