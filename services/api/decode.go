package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"enjin"
)

// body is a request body type: it checks itself once decoded.
type body interface {
	validate() error
}

// decode reads r's body (at most the API's limit) into v and validates it. An optional body
// may be empty, which reads as {}.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v body, optional bool) error {
	switch ct := r.Header.Values("Content-Type"); {
	case len(ct) > 1:
		return badRequest("bad_request", "more than one Content-Type header")
	case len(ct) == 1:
		if err := checkContentType(ct[0]); err != nil {
			return err
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.maxBody))
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return &apiError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	}
	if err != nil {
		return badRequest("bad_body", "reading the request body: %s", oneLine(err.Error()))
	}
	return decodeBody(b, v, optional)
}

func checkContentType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			return nil
		}
	}
	return &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type",
		fmt.Sprintf("Content-Type %q is not accepted: send the header Content-Type: application/json (with curl -d, add -H 'Content-Type: application/json')", trunc(ct, 100))}
}

// decodeBody decodes b, which must be one UTF-8 JSON object with only known fields, into v
// and validates it.
func decodeBody(b []byte, v body, optional bool) error {
	trimmed := bytes.Trim(b, " \t\r\n")
	if len(trimmed) == 0 {
		if !optional {
			return badRequest("bad_json", "a JSON object body is required")
		}
		trimmed = []byte("{}")
	}
	// encoding/json would quietly replace bad UTF-8 with U+FFFD; refuse it instead.
	if !utf8.Valid(trimmed) {
		return badRequest("bad_utf8", "the body is not valid UTF-8")
	}
	if trimmed[0] != '{' {
		return badRequest("bad_json", "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("bad_json", "%s", jsonMessage(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("bad_json", "trailing data after the JSON object")
	}
	return v.validate()
}

// jsonMessage says what is wrong with a body in the caller's terms, not Go's.
func jsonMessage(err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, se.Error())
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("field %q: unexpected %s", te.Field, te.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "the JSON object is cut short"
	}
	return oneLine(strings.TrimPrefix(err.Error(), "json: "))
}

// ifMatch returns the version named by r's If-Match header, which writes to versioned
// objects require.
func ifMatch(r *http.Request) (int64, error) {
	v, ok, err := optionalIfMatch(r)
	if err == nil && !ok {
		err = &apiError{http.StatusPreconditionRequired, "precondition_required",
			`If-Match is required: send the ETag you read, such as If-Match: "3"`}
	}
	return v, err
}

// optionalIfMatch returns the version named by r's If-Match header, if it has one.
func optionalIfMatch(r *http.Request) (int64, bool, error) {
	switch vals := r.Header.Values("If-Match"); len(vals) {
	case 0:
		return 0, false, nil
	case 1:
		v, err := parseVersion(vals[0])
		return v, err == nil, err
	default:
		return 0, false, badRequest("bad_if_match", "more than one If-Match header")
	}
}

// parseVersion reads an ETag as this API writes it ("3"), or a bare version (3).
func parseVersion(s string) (int64, error) {
	s = strings.TrimSpace(s)
	d := s
	if len(d) >= 2 && d[0] == '"' && d[len(d)-1] == '"' {
		d = d[1 : len(d)-1]
	}
	if d == "" || len(d) > 18 || strings.ContainsFunc(d, func(r rune) bool { return r < '0' || r > '9' }) || d[0] == '0' {
		return 0, badRequest("bad_if_match", "If-Match %q: want a version as the ETag gives it, such as \"3\"", trunc(s, 40))
	}
	return strconv.ParseInt(d, 10, 64)
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// query is a parsed query string: named parameters and metadata.<key> filters.
type query struct {
	vals map[string]string
	meta map[string]string
}

// parseQuery parses raw, refusing malformed escapes, parameters the route does not take,
// repeated parameters and text PostgreSQL cannot hold.
func parseQuery(raw string, names []string, withMeta bool) (query, error) {
	vs, err := url.ParseQuery(raw)
	if err != nil {
		return query{}, badRequest("bad_query", "query string: %s", oneLine(err.Error()))
	}
	q := query{vals: map[string]string{}, meta: map[string]string{}}
	for _, k := range slices.Sorted(maps.Keys(vs)) {
		v := vs[k]
		if len(v) > 1 {
			return query{}, badRequest("bad_query", "query parameter %q given %d times", trunc(k, 80), len(v))
		}
		if !text(k) || !text(v[0]) {
			return query{}, badRequest("bad_query", "query parameter %q is not valid UTF-8 text", trunc(k, 80))
		}
		if mk, ok := strings.CutPrefix(k, "metadata."); ok && withMeta {
			if mk == "" {
				return query{}, badRequest("bad_query", "metadata filter with no key: use metadata.<key>=<value>")
			}
			q.meta[mk] = v[0]
			continue
		}
		if !slices.Contains(names, k) {
			return query{}, badRequest("bad_query", "unknown query parameter %q", trunc(k, 80))
		}
		q.vals[k] = v[0]
	}
	return q, nil
}

// intParam reads query parameter name as an integer in [lo, hi], or def if absent.
func (q query) intParam(name string, lo, hi, def int) (int, error) {
	s, ok := q.vals[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("bad_query", "%s=%q: want an integer from %d to %d", name, trunc(s, 40), lo, hi)
	}
	return n, nil
}

// text reports whether s is UTF-8 without NUL, which PostgreSQL text cannot hold.
func text(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// pathNode reads path wildcard name as a node id.
func pathNode(r *http.Request, name string) (enjin.NodeID, error) {
	id := enjin.NodeID(r.PathValue(name))
	if err := id.Validate(); err != nil {
		return "", badRequest("bad_id", "node id %q: want a slug or a UUID", trunc(string(id), 80))
	}
	return id, nil
}

// pathUUID reads path wildcard name as the UUID of a compartment or tier.
func pathUUID(r *http.Request, name, what string) (string, error) {
	s := strings.ToLower(r.PathValue(name))
	if !enjin.IsUUID(s) {
		return "", badRequest("bad_id", "%s id %q: want a UUID", what, trunc(r.PathValue(name), 80))
	}
	return s, nil
}
