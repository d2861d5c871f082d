package api

import (
	"encoding"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"enjin"
	"enjin/services/appapi"
)

// openAPI builds the OpenAPI 3.0 document of routes: the same table the mux is built from.
// Schemas are generated from the Go types the handlers decode and encode.
func openAPI(routes []route) map[string]any {
	g := &schemaGen{components: map[string]any{}, requests: map[string]bool{}}
	// The types of request bodies first: an answer's type (or a part of it) that is no
	// request's requires every field Go always encodes, so a missing one is a drift.
	for _, rt := range routes {
		for _, v := range []any{rt.body, rt.rawIn} {
			if v != nil {
				g.schema(reflect.TypeOf(v))
			}
		}
	}
	for name := range g.components {
		g.requests[name] = true
	}
	g.answers = true
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = g.operation(rt)
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       "enjin ring 0 meta API",
			"version":     "1",
			"description": "Every error is {\"error\": \"...\", \"code\": \"...\"}. Writes to versioned objects need If-Match with the ETag read.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": g.components,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "the admin token"},
				"basic":  map[string]any{"type": "http", "scheme": "basic", "description": "htpasswd users; only admins may write"},
			},
		},
		"security": []any{map[string]any{"bearer": []string{}}, map[string]any{"basic": []string{}}},
	}
}

func (g *schemaGen) operation(rt route) map[string]any {
	op := map[string]any{
		"operationId":   operationID(rt),
		"summary":       rt.summary,
		"x-enjin-admin": rt.access == admin,
		"responses":     g.responses(rt),
	}
	if rt.access == public {
		op["security"] = []any{}
	}
	var params []any
	for _, n := range pathWildcards(rt.path) {
		params = append(params, map[string]any{"name": n, "in": "path", "required": true,
			"description": wildcards[n].desc, "schema": map[string]any{"type": "string"}})
	}
	for _, p := range rt.query {
		params = append(params, map[string]any{"name": p.name, "in": "query", "description": p.desc, "schema": p.schema})
	}
	if rt.meta {
		params = append(params, map[string]any{"name": "metadata.*", "in": "query", "description": metaDoc,
			"schema": map[string]any{"type": "string"}, "x-enjin-prefix": "metadata."})
	}
	if rt.ifMatch != noCondition {
		params = append(params, map[string]any{"name": "If-Match", "in": "header", "required": rt.ifMatch == mustMatch,
			"description": `the ETag (version) read, such as "3"; a stale one is 409`, "schema": map[string]any{"type": "string"}})
	}
	if params != nil {
		op["parameters"] = params
	}
	if rt.rawBody != "" {
		schema := rawSchema(rt.rawBody)
		if rt.rawIn != nil {
			schema = g.schema(reflect.TypeOf(rt.rawIn))
		}
		op["requestBody"] = map[string]any{"required": true,
			"content": map[string]any{rt.rawBody: map[string]any{"schema": schema}}}
	}
	if rt.body != nil {
		op["requestBody"] = map[string]any{"required": !rt.optional,
			"content": map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(rt.body))}}}
	}
	return op
}

// rawSchema describes a body passed through unread: any bytes, or a kernel image's form.
func rawSchema(contentType string) map[string]any {
	switch contentType {
	case "application/octet-stream":
		return map[string]any{"type": "string", "format": "binary"}
	case "multipart/form-data":
		bin := map[string]any{"type": "string", "format": "binary"}
		return map[string]any{"type": "object", "required": []string{"kernel", "initrd"},
			"properties": map[string]any{"kernel": bin, "initrd": bin}}
	}
	return map[string]any{}
}

func operationID(rt route) string {
	id := strings.ToLower(rt.method) + strings.NewReplacer("/", "_", "{", "", "}", "", "-", "_", ".", "_").Replace(rt.path)
	return strings.ReplaceAll(id, "__", "_")
}

func (g *schemaGen) responses(rt route) map[string]any {
	ok := map[string]any{"description": http.StatusText(rt.status)}
	var ndjson map[string]any
	if rt.out != nil {
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(rt.out))}}
	}
	if rt.rawOut != "" {
		ok["content"] = map[string]any{rt.rawOut: map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}
	}
	if versioned(reflect.TypeOf(rt.out)) {
		h := map[string]any{"ETag": map[string]any{"description": "the object's version", "schema": map[string]any{"type": "string"}}}
		if rt.status == http.StatusCreated {
			h["Location"] = map[string]any{"description": "the new object's URL", "schema": map[string]any{"type": "string"}}
		}
		ok["headers"] = h
	}
	if rt.lines != nil {
		lines := map[string]any{"application/x-ndjson": map[string]any{"schema": g.lineSchema(rt.lines)}}
		if rt.out == nil {
			ok["content"] = lines
		} else {
			ndjson = map[string]any{"description": "the same, as it happens, one JSON value a line (Accept: application/x-ndjson)", "content": lines}
		}
	}
	out := map[string]any{strconv.Itoa(rt.status): ok}
	if rt.accepted {
		out[strconv.Itoa(http.StatusAccepted)] = map[string]any{"description": "Accepted: the rest goes on after the answer", "content": ok["content"]}
	}
	if ndjson != nil {
		out[strconv.Itoa(http.StatusOK)] = ndjson
	}
	errRef := g.schema(reflect.TypeOf(errorBody{}))
	if rt.forwarded {
		errRef = g.schema(reflect.TypeOf(appapi.Error{}))
	}
	for _, code := range errorStatuses(rt) {
		out[strconv.Itoa(code)] = map[string]any{"description": http.StatusText(code),
			"content": map[string]any{"application/json": map[string]any{"schema": errRef}}}
	}
	for code, types := range rt.answers {
		resp := map[string]any{"description": http.StatusText(code)}
		content := map[string]any{}
		for _, ct := range types {
			schema := map[string]any{"type": "string", "format": "binary"}
			if ct == "application/json" {
				schema = errRef
			}
			content[ct] = map[string]any{"schema": schema}
		}
		if len(content) != 0 {
			resp["content"] = content
		}
		out[strconv.Itoa(code)] = resp
	}
	return out
}

// lineSchema is the schema of each line of an application/x-ndjson answer whose lines are
// of the types of values (blank lines, which keep a quiet answer alive, aside).
func (g *schemaGen) lineSchema(values []any) map[string]any {
	if len(values) == 1 {
		return g.schema(reflect.TypeOf(values[0]))
	}
	var alts []any
	for _, v := range values {
		alts = append(alts, g.schema(reflect.TypeOf(v)))
	}
	return map[string]any{"anyOf": alts}
}

// vmPaths are the paths of the routes the VM service (Config.VMs) carries out.
var vmPaths = regexp.MustCompile(`/(vms|volumes|hosts|console)(/|$)`)

// errorStatuses lists the errors a route can answer with, from what it declares.
func errorStatuses(rt route) []int {
	codes := []int{http.StatusBadRequest, http.StatusInternalServerError}
	add := func(cond bool, cs ...int) {
		if cond {
			codes = append(codes, cs...)
		}
	}
	write := rt.method != http.MethodGet
	if strings.HasPrefix(rt.path, "/ui") { // the web view: its own session, its own errors
		codes = append(codes, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound)
		slices.Sort(codes)
		return codes
	}
	add(rt.access != public, http.StatusUnauthorized)
	// Any identity can be refused: a reader writing or revealing, a tenant outside its own.
	add(rt.access != public || rt.path == "/v1/join", http.StatusForbidden)
	add(len(pathWildcards(rt.path)) > 0, http.StatusNotFound)
	add(write && rt.path != "/v1/join" && rt.path != "/v1/creds/ops", http.StatusConflict)
	add(rt.body != nil, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity)
	add(rt.ifMatch == mustMatch, http.StatusPreconditionRequired)
	add(rt.path == "/healthz", http.StatusServiceUnavailable)
	add(rt.path == "/metrics", http.StatusNotFound)                                             // a ring 0 that keeps none
	add(rt.path == "/v1/backup", http.StatusServiceUnavailable)                                 // a ring 0 that makes none
	add(rt.path == "/v1/system/backups" && rt.method == http.MethodDelete, http.StatusNotFound) // none issued
	// VMs, volumes and host VMs: 503 where this ring 0 runs none; 502 where their ring 1 node
	// did not carry the operation out.
	vms := vmPaths.MatchString(rt.path)
	add(vms, http.StatusBadGateway, http.StatusServiceUnavailable)
	add(strings.HasPrefix(rt.path, "/v1/tenants/{tenant}/rulesets/") && write, http.StatusBadGateway)
	// Ring 1's app API: what it refuses, and ring 0 when it does not answer.
	add(rt.forwarded, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge,
		http.StatusUnprocessableEntity, http.StatusBadGateway)
	add(rt.method == http.MethodDelete && rt.path == "/v1/nodes/{node}", http.StatusUnprocessableEntity) // not a ring 1 node
	// Image uploads: over the limit, the wrong type, refused as hostile, for an unknown tenant;
	// the routes that touch the image store's files answer 503 if it did not start.
	images := strings.HasPrefix(rt.path, "/v1/images")
	add(images && rt.method == http.MethodPost, http.StatusRequestEntityTooLarge,
		http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity, http.StatusNotFound)
	add(images && (write || rt.rawOut != ""), http.StatusServiceUnavailable)
	// Custom domains: 503 where this ring 0 has no key to seal theirs with.
	add(rt.method == http.MethodPut && strings.HasSuffix(rt.path, "/domains/{domain}"), http.StatusServiceUnavailable)
	slices.Sort(codes)
	return slices.Compact(codes)
}

// versioned reports whether responses of type t carry an ETag: objects with a version, and
// promotions (the tier's).
func versioned(t reflect.Type) bool {
	if t == nil || t.Kind() != reflect.Struct {
		return false
	}
	if _, ok := t.FieldByName("Version"); ok {
		return true
	}
	f, ok := t.FieldByName("Tier")
	return ok && versioned(f.Type)
}

// schemaGen generates JSON schemas from Go types, naming each struct type a component.
type schemaGen struct {
	components map[string]any
	requests   map[string]bool // components of request bodies
	answers    bool            // generating the schemas of answers
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()

	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	ringType      = reflect.TypeFor[enjin.Ring]()
)

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	if t.Kind() != reflect.Interface && !t.Implements(jsonMarshaler) && reflect.PointerTo(t).Implements(textMarshaler) {
		return map[string]any{"type": "string"} // netip.Prefix, netip.Addr: JSON has their text
	}
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case rawType:
		return map[string]any{"description": "any JSON value"}
	case ringType:
		return map[string]any{"type": "integer", "minimum": 0, "maximum": 2}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "format": "int64"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "format": "byte"}
		}
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Struct:
		return g.ref(t)
	}
	return map[string]any{} // interface: any JSON value
}

// ref returns a reference to t's component, generating it the first time.
func (g *schemaGen) ref(t reflect.Type) map[string]any {
	name := strings.ToUpper(t.Name()[:1]) + t.Name()[1:]
	if _, ok := g.components[name]; !ok {
		g.components[name] = nil // reserves the name while the fields are generated
		g.components[name] = g.object(t, g.answers && !g.requests[name])
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

// object is the schema of struct type t; with encoded, every field encoding/json always
// writes (no omitempty, no omitzero) is required.
func (g *schemaGen) object(t reflect.Type, encoded bool) map[string]any {
	props := map[string]any{}
	var required []string
	g.fields(t, props, &required, encoded)
	obj := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if required != nil {
		obj["required"] = required
	}
	return obj
}

// fields adds the properties of struct t's fields to props, and the names of those it requires
// to required. An embedded struct without a JSON name is flattened, as encoding/json does.
func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]string, encoded bool) {
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			g.fields(f.Type, props, required, encoded)
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.schema(f.Type)
		always := encoded && !slices.ContainsFunc(strings.Split(opts, ","), func(o string) bool { return o == "omitempty" || o == "omitzero" })
		if f.Tag.Get("api") == "required" || always {
			*required = append(*required, name)
		}
	}
}
