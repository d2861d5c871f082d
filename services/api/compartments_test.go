package api_test

import (
	"strings"
	"testing"
)

// deep returns a body whose metadata is n objects deep (metadata itself is the first).
func deep(n int) string {
	return `{"ring":1,"type":"row","metadata":` + strings.Repeat(`{"a":`, n-1) + `{}` + strings.Repeat(`}`, n-1) + `}`
}

var tooLarge = `{"ring":1,"type":"row","label":"` + strings.Repeat("a", 1<<20) + `"}`

func compartmentSteps() []step {
	post := func(name, body string, status int, code string) step {
		return step{name: name, method: "POST", path: "/v1/compartments", auth: asAdmin, body: body, status: status, code: code}
	}
	return []step{
		{name: "create row", method: "POST", path: "/v1/compartments", auth: asAdmin, body: `{"ring":1,"type":"row","label":"row-1"}`,
			status: 201, save: map[string]string{"c1": "id", "c1e": "@etag"},
			check: func(t *testing.T, r response, v map[string]string) {
				want("version", "1", "type", "row", "label", "row-1")(t, r, v)
				wantHeader("Location", "/v1/compartments/{c1}")(t, r, v)
				wantHeader("ETag", `"1"`)(t, r, v)
			}},
		{name: "create rack in row", method: "POST", path: "/v1/compartments", auth: asAdmin,
			body:   `{"ring":1,"type":"rack","label":"rack-1","parents":["{c1}"],"metadata":{"site":"a","n":[1,2,{"x":null}]}}`,
			status: 201, save: map[string]string{"c2": "id", "c2e": "@etag"}, check: want("parents.0", "{c1}", "metadata.site", "a")},
		post("bad JSON", `{"ring":1,`, 400, "bad_json"),
		post("syntax error", `{"ring":1,,}`, 400, "bad_json"),
		post("unknown field", `{"ring":1,"type":"row","colour":"red"}`, 400, "bad_json"),
		post("bad UTF-8", "{\"ring\":1,\"type\":\"row\",\"label\":\"\xff\xfe\"}", 400, "bad_utf8"),
		post("too large", tooLarge, 413, "too_large"),
		post("trailing data", `{"ring":1,"type":"row"} {}`, 400, "bad_json"),
		post("trailing garbage", `{"ring":1,"type":"row"}x`, 400, "bad_json"),
		post("array body", `[{"ring":1,"type":"row"}]`, 400, "bad_json"),
		post("null body", `null`, 400, "bad_json"),
		post("wrong type of field", `{"ring":"one","type":"row"}`, 400, "bad_json"),
		post("number too big", `{"ring":1e40,"type":"row"}`, 400, "bad_json"),
		post("ring out of range", `{"ring":5,"type":"row"}`, 422, "invalid"),
		post("ring missing", `{"type":"row"}`, 422, "invalid"),
		post("bad type", `{"ring":1,"type":"Bad Type"}`, 422, "invalid"),
		post("label too long", `{"ring":1,"type":"row","label":"`+strings.Repeat("é", 201)+`"}`, 422, "invalid"),
		post("label with NUL", `{"ring":1,"type":"row","label":"a\u0000b"}`, 422, "invalid"),
		post("metadata NUL value", `{"ring":1,"type":"row","metadata":{"a":"\u0000"}}`, 422, "invalid"),
		post("metadata NUL key", `{"ring":1,"type":"row","metadata":{"\u0000":1}}`, 422, "invalid"),
		post("metadata 16 deep", deep(16), 201, ""),
		post("metadata 17 deep", deep(17), 422, "invalid"),
		post("metadata 100k deep", deep(100000), 400, "bad_json"),
		post("metadata too big", `{"ring":1,"type":"row","metadata":{"a":"`+strings.Repeat("x", 70<<10)+`"}}`, 422, "invalid"),
		post("metadata not an object", `{"ring":1,"type":"row","metadata":[1]}`, 400, "bad_json"),
		post("parent not a UUID", `{"ring":1,"type":"row","parents":["row-1"]}`, 422, "invalid"),
		post("parent missing", `{"ring":1,"type":"row","parents":["{nouuid}"]}`, 422, "invalid"),
		post("empty body", ``, 400, "bad_json"),
		{name: "text/plain", method: "POST", path: "/v1/compartments", auth: asAdmin, hdr: []string{"Content-Type", "text/plain"},
			body: `{"ring":1,"type":"row"}`, status: 415, code: "unsupported_media_type", check: namesContentType},
		{name: "curl -d without a type", method: "POST", path: "/v1/compartments", auth: asAdmin, hdr: []string{"Content-Type", "application/x-www-form-urlencoded"},
			body: `{"ring":1,"type":"row"}`, status: 415, code: "unsupported_media_type", check: namesContentType},
		{name: "latin-1 JSON", method: "POST", path: "/v1/compartments", auth: asAdmin, hdr: []string{"Content-Type", "application/json; charset=latin1"},
			body: `{"ring":1,"type":"row"}`, status: 415},
		{name: "charset utf-8 is fine", method: "POST", path: "/v1/compartments", auth: asAdmin, hdr: []string{"Content-Type", "application/json; charset=UTF-8"},
			body: `{"ring":2,"type":"feed","label":"feed-a","metadata":{"power":"a"}}`, status: 201},
		{name: "list", method: "GET", path: "/v1/compartments", auth: asBob, status: 200, check: count("compartments", 4)},
		{name: "list by metadata", method: "GET", path: "/v1/compartments?metadata.site=a", auth: asBob, status: 200,
			check: want("compartments.0.id", "{c2}", "compartments.1", "")},
		{name: "list by two metadata keys", method: "GET", path: "/v1/compartments?metadata.site=a&metadata.power=a", auth: asBob, status: 200,
			check: count("compartments", 0)},
		{name: "list metadata without key", method: "GET", path: "/v1/compartments?metadata.=a", auth: asBob, status: 400, code: "bad_query"},
		{name: "list unknown parameter", method: "GET", path: "/v1/compartments?ring=1", auth: asBob, status: 400, code: "bad_query"},
		{name: "list repeated parameter", method: "GET", path: "/v1/compartments?metadata.a=1&metadata.a=2", auth: asBob, status: 400},
		{name: "list bad escape", method: "GET", path: "/v1/compartments?metadata.a=%zz", auth: asBob, status: 400},
		{name: "list NUL", method: "GET", path: "/v1/compartments?metadata.a=%00", auth: asBob, status: 400},
		{name: "list bad UTF-8", method: "GET", path: "/v1/compartments?metadata.a=%ff", auth: asBob, status: 400},
		{name: "get", method: "GET", path: "/v1/compartments/{c1}", auth: asBob, status: 200,
			check: wantHeader("ETag", `"1"`)},
		{name: "get by uppercase id", method: "GET", path: "/v1/compartments/{c1upper}", auth: asBob, status: 200,
			before: func(t *testing.T, v map[string]string) { v["c1upper"] = strings.ToUpper(v["c1"]) }},
		{name: "get bad id", method: "GET", path: "/v1/compartments/row-1", auth: asBob, status: 400, code: "bad_id"},
		{name: "get missing", method: "GET", path: "/v1/compartments/{nouuid}", auth: asBob, status: 404, code: "not_found"},
		{name: "patch without If-Match", method: "PATCH", path: "/v1/compartments/{c1}", auth: asAdmin, body: `{"label":"x"}`,
			status: 428, code: "precondition_required"},
		{name: "patch malformed If-Match", method: "PATCH", path: "/v1/compartments/{c1}", auth: asAdmin, hdr: []string{"If-Match", `"abc"`},
			body: `{"label":"x"}`, status: 400, code: "bad_if_match"},
		{name: "patch weak If-Match", method: "PATCH", path: "/v1/compartments/{c1}", auth: asAdmin, hdr: []string{"If-Match", `W/"1"`},
			body: `{"label":"x"}`, status: 400, code: "bad_if_match"},
		{name: "patch If-Match *", method: "PATCH", path: "/v1/compartments/{c1}", auth: asAdmin, hdr: []string{"If-Match", `*`},
			body: `{"label":"x"}`, status: 400, code: "bad_if_match"},
		{name: "patch two If-Match", method: "PATCH", path: "/v1/compartments/{c1}", auth: asAdmin,
			hdr: []string{"If-Match", `"1"`, "If-Match", `"1"`}, body: `{"label":"x"}`, status: 400, code: "bad_if_match"},
		{name: "patch makes a cycle", method: "PATCH", path: "/v1/compartments/{c1}", auth: asAdmin, hdr: []string{"If-Match", "{c1e}"},
			body: `{"parents":["{c2}"]}`, status: 422, code: "invalid"},
		{name: "patch own parent", method: "PATCH", path: "/v1/compartments/{c1}", auth: asAdmin, hdr: []string{"If-Match", "{c1e}"},
			body: `{"parents":["{c1}"]}`, status: 422, code: "invalid"},
		{name: "patch label", method: "PATCH", path: "/v1/compartments/{c1}", auth: asAdmin, hdr: []string{"If-Match", "{c1e}"},
			body: `{"label":"row-one"}`, status: 200, check: func(t *testing.T, r response, v map[string]string) {
				want("label", "row-one", "version", "2")(t, r, v)
				wantHeader("ETag", `"2"`)(t, r, v)
			}},
		{name: "patch stale", method: "PATCH", path: "/v1/compartments/{c1}", auth: asAdmin, hdr: []string{"If-Match", "{c1e}"},
			body: `{"label":"row-uno"}`, status: 409, code: "conflict"},
		{name: "patch bare If-Match", method: "PATCH", path: "/v1/compartments/{c1}", auth: asAdmin, hdr: []string{"If-Match", "2"},
			body: `{"metadata":{"row":1}}`, status: 200, check: want("version", "3", "metadata.row", "1", "label", "row-one")},
		{name: "patch nothing", method: "PATCH", path: "/v1/compartments/{c1}", auth: asAdmin, hdr: []string{"If-Match", `"3"`},
			body: `{}`, status: 422, code: "invalid"},
		{name: "patch by reader", method: "PATCH", path: "/v1/compartments/{c1}", auth: asBob, hdr: []string{"If-Match", `"3"`},
			body: `{"label":"x"}`, status: 403},
		{name: "patch missing", method: "PATCH", path: "/v1/compartments/{nouuid}", auth: asAdmin, hdr: []string{"If-Match", `"1"`},
			body: `{"label":"x"}`, status: 404},
		{name: "delete without If-Match", method: "DELETE", path: "/v1/compartments/{c2}", auth: asAdmin, status: 428},
		{name: "delete stale", method: "DELETE", path: "/v1/compartments/{c2}", auth: asAdmin, hdr: []string{"If-Match", `"9"`}, status: 409},
		{name: "delete", method: "DELETE", path: "/v1/compartments/{c2}", auth: asAdmin, hdr: []string{"If-Match", "{c2e}"}, status: 204},
		{name: "deleted", method: "GET", path: "/v1/compartments/{c2}", auth: asAdmin, status: 404},
		{name: "delete again", method: "DELETE", path: "/v1/compartments/{c2}", auth: asAdmin, hdr: []string{"If-Match", "{c2e}"}, status: 404},
		{name: "history of deleted", method: "GET", path: "/v1/history/compartment/{c2}", auth: asBob, status: 200,
			check: func(t *testing.T, r response, v map[string]string) {
				count("history", 2)(t, r, v)
				want("history.1.deleted", "true", "history.0.data.label", "rack-1")(t, r, v)
			}},
		{name: "history bad kind", method: "GET", path: "/v1/history/widget/{c2}", auth: asBob, status: 400, code: "bad_id"},
		{name: "history bad id", method: "GET", path: "/v1/history/compartment/row-1", auth: asBob, status: 400, code: "bad_id"},
		{name: "history of nothing", method: "GET", path: "/v1/history/tier/{nouuid}", auth: asBob, status: 404},
	}
}

// namesContentType checks a 415 says which header to send, and how with curl.
func namesContentType(t *testing.T, r response, _ map[string]string) {
	t.Helper()
	if msg := str(r.json, "error"); !strings.Contains(msg, "send the header Content-Type: application/json") || !strings.Contains(msg, "-H 'Content-Type: application/json'") {
		t.Errorf("415 message %q does not name the header to send", msg)
	}
}
