package api

import (
	"errors"
	"net/http"
	"slices"
)

// Hooks into the package's internals for the external tests.

// SetPanicHook has a call f with every panic its recover middleware catches.
func SetPanicHook(a *API, f func(any)) { a.onPanic = f }

// Patterns lists every pattern registered on a's mux.
func Patterns(a *API) []string { return slices.Clone(a.patterns) }

// MuxPattern returns the pattern a's mux routes r to, or "" if none.
func MuxPattern(a *API, r *http.Request) string {
	_, p := a.mux.Handler(r)
	return p
}

// AppPatterns lists the patterns of a's routes that ring 1's app API answers, forwarded.
func AppPatterns(a *API) []string {
	var ps []string
	for _, rt := range a.routes() {
		if rt.forwarded && slices.Contains(a.patterns, rt.method+" "+rt.path) {
			ps = append(ps, rt.method+" "+rt.path)
		}
	}
	return ps
}

// BodyKinds lists the request body types by the route that takes them ("POST /v1/nodes").
func BodyKinds() []string {
	var kinds []string
	for _, rt := range (&API{}).routes() {
		if rt.body != nil {
			kinds = append(kinds, rt.method+" "+rt.path)
		}
	}
	return kinds
}

// DecodeBody decodes and validates b as the body of the route named kind, as the route
// would (apart from the size limit, which is the server's).
func DecodeBody(kind string, b []byte) (any, error) {
	for _, rt := range (&API{}).routes() {
		if rt.body != nil && rt.method+" "+rt.path == kind {
			v := rt.newBody()
			return v, decodeBody(b, v, rt.optional)
		}
	}
	return nil, errors.New("no such body kind")
}

// ParseIfMatch parses an If-Match value.
func ParseIfMatch(s string) (int64, error) { return parseVersion(s) }

// ETag formats a version as the API's ETag.
func ETag(v int64) string { return etag(v) }

// ParseQueries runs raw through every route's query parsing, and the node list's and the
// observation list's value checks, returning every error.
func ParseQueries(raw string) []error {
	var errs []error
	for _, rt := range (&API{}).routes() {
		var names []string
		for _, p := range rt.query {
			names = append(names, p.name)
		}
		q, err := parseQuery(raw, names, rt.meta)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch rt.path {
		case "/v1/nodes":
			_, err = nodeFilter(q)
		case "/v1/nodes/{node}/observations":
			_, _, err = observationPage(q)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Status is the HTTP status err answers with, if it is one of the API's own errors, else 0.
func Status(err error) int {
	if ae, ok := errors.AsType[*apiError](err); ok {
		return ae.status
	}
	return 0
}

// CheckDomain normalizes a domain name as the domain routes do.
func CheckDomain(s string) (string, bool) { return checkDomain(s) }

// CheckCertKey reads a certificate chain and its key as PUT …/domains/{domain} does and
// returns the status it refuses them with (0: accepted).
func CheckCertKey(cert, key string) int {
	_, leaf, err := parseCertChain(cert)
	if err == nil {
		_, err = parseKeyFor(key, leaf)
	}
	if err != nil {
		return Status(err)
	}
	return 0
}
