package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"enjin/services/api"
)

// schemaCheck validates answers of the API against its own OpenAPI document: the schema the
// document declares for the answer's route, status and content type. It counts what it
// checked, by route and by success or error.
type schemaCheck struct {
	a        *api.API
	doc      map[string]any // the document, decoded
	compiler *jsonschema.Compiler

	mu       sync.Mutex
	schemas  map[string]*jsonschema.Schema // by JSON pointer
	seen     map[string][2]int             // by pattern: successes, errors checked
	bad      []string                      // answers that did not match
	checked  int
	statuses map[string]bool // pattern and status, once each
}

// newSchemaCheck reads a's document from its own /openapi.json.
func newSchemaCheck(t *testing.T, a *api.API) *schemaCheck {
	t.Helper()
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("GET /openapi.json: %d %v", rec.Code, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("openapi.json", doc); err != nil {
		t.Fatal(err)
	}
	return &schemaCheck{a: a, doc: doc, compiler: c, schemas: map[string]*jsonschema.Schema{},
		seen: map[string][2]int{}, statuses: map[string]bool{}}
}

// pointer escapes one JSON pointer token.
func pointer(s string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }

// transport wraps base: every answer of a route is read whole and checked against the
// document before the caller reads it.
func (sc *schemaCheck) transport(base http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		pattern := api.MuxPattern(sc.a, req)
		res, err := base.RoundTrip(req)
		if err != nil || pattern == "" || req.Method == http.MethodHead || muxRedirect(res.StatusCode) {
			return res, err // not a route's answer (the mux's redirect), or no body to check
		}
		var b []byte
		if ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); ct == "text/event-stream" {
			b, err = firstEvent(res.Body) // the stream goes on: its first event is enough
		} else {
			b, err = io.ReadAll(res.Body)
		}
		res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(b))
		if err != nil {
			return res, err
		}
		sc.check(pattern, res, b)
		return res, nil
	})
}

// muxRedirect reports whether status is one the mux redirects an unclean path with; the
// routes' own redirects (the web view's 303) are theirs to document.
func muxRedirect(status int) bool {
	return status == http.StatusMovedPermanently || status == http.StatusTemporaryRedirect || status == http.StatusPermanentRedirect
}

// firstEvent reads a Server-Sent Events stream up to the end of its first event.
func firstEvent(r io.Reader) ([]byte, error) {
	var b []byte
	br := bufio.NewReader(io.LimitReader(r, 64<<10))
	for {
		line, err := br.ReadBytes('\n')
		b = append(b, line...)
		if err != nil || bytes.Equal(line, []byte("\n")) && len(b) > 1 {
			return b, err
		}
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// check validates one answer of route pattern ("GET /v1/nodes/{node}").
func (sc *schemaCheck) check(pattern string, res *http.Response, body []byte) {
	err := sc.validate(pattern, res, body)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.checked++
	sc.statuses[pattern+" "+strconv.Itoa(res.StatusCode)] = true
	n := sc.seen[pattern]
	if res.StatusCode >= 400 {
		n[1]++
	} else {
		n[0]++
	}
	sc.seen[pattern] = n
	if err != nil {
		sc.bad = append(sc.bad, fmt.Sprintf("%s → %d: %v\n\tbody: %.600s", pattern, res.StatusCode, err, body))
	}
}

func (sc *schemaCheck) validate(pattern string, res *http.Response, body []byte) error {
	method, path, _ := strings.Cut(pattern, " ")
	ops, _ := sc.doc["paths"].(map[string]any)[path].(map[string]any)
	op, _ := ops[strings.ToLower(method)].(map[string]any)
	resp, _ := op["responses"].(map[string]any)[strconv.Itoa(res.StatusCode)].(map[string]any)
	if resp == nil {
		return fmt.Errorf("status %d is not documented", res.StatusCode)
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(bytes.TrimSpace(body)) != 0 {
			return fmt.Errorf("documented without content, answered %d bytes", len(body))
		}
		return nil
	}
	ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	key := ""
	for k := range content {
		if mt, _, _ := mime.ParseMediaType(k); mt == ct {
			key = k
		}
	}
	if key == "" {
		return fmt.Errorf("content type %q; documented: %v", ct, slices.Sorted(maps.Keys(content)))
	}
	ptr := "openapi.json#/paths/" + pointer(path) + "/" + strings.ToLower(method) + "/responses/" +
		strconv.Itoa(res.StatusCode) + "/content/" + pointer(key) + "/schema"
	switch ct {
	case "application/json":
		return sc.against(ptr, body)
	case "application/x-ndjson":
		scan := bufio.NewScanner(bytes.NewReader(body))
		scan.Buffer(nil, 1<<20)
		lines := 0
		for scan.Scan() {
			if len(bytes.TrimSpace(scan.Bytes())) == 0 {
				continue // keeps a quiet answer alive
			}
			lines++
			if err := sc.against(ptr, scan.Bytes()); err != nil {
				return fmt.Errorf("line %d: %w", lines, err)
			}
		}
		return scan.Err()
	}
	return nil // text or bytes, of the documented type
}

// against validates JSON value b against the schema at ptr.
func (sc *schemaCheck) against(ptr string, b []byte) error {
	sc.mu.Lock()
	s, ok := sc.schemas[ptr]
	var err error
	if !ok {
		if s, err = sc.compiler.Compile(ptr); err != nil {
			sc.mu.Unlock()
			return fmt.Errorf("compile %s: %w", ptr, err)
		}
		sc.schemas[ptr] = s
	}
	sc.mu.Unlock()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(v)
}
