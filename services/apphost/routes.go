package apphost

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"enjin/services/appapi"
)

// API is the app API's HTTP handler (see Host.Handler).
type API struct {
	token    string
	mux      *http.ServeMux
	patterns []string
}

// newAPI registers each route of appapi's table with the handler of its operation. It fails,
// naming each, on a route without a handler and on a handler without a route.
func newAPI(token string, handlers map[appapi.Op]http.Handler) (*API, error) {
	a := &API{token: token, mux: http.NewServeMux()}
	var errs []error
	for _, r := range appapi.Routes() {
		h, ok := handlers[r.Op]
		if !ok {
			errs = append(errs, fmt.Errorf("app API: route %s (%s) has no handler", r.Op, r.Pattern()))
			continue
		}
		delete(handlers, r.Op)
		a.mux.Handle(r.Pattern(), h)
		a.patterns = append(a.patterns, r.Pattern())
	}
	for op := range handlers {
		errs = append(errs, fmt.Errorf("app API: handler %s has no route in appapi's table", op))
	}
	return a, errors.Join(errs...)
}

// Patterns lists the patterns a serves, "METHOD path", in the table's order.
func (a *API) Patterns() []string { return slices.Clone(a.patterns) }

// ServeHTTP checks the token, then answers by the route's handler. A request no route takes
// is answered as the meta API answers one, JSON with code no_route or method_not_allowed,
// rather than net/http's plain text.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
		writeErr(w, http.StatusUnauthorized, errors.New("missing or wrong token"))
		return
	}
	h, pattern := a.mux.Handler(r)
	if pattern == "" {
		noRoute(w, r, h)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// noRoute answers, as JSON, a request the mux has no route for: mux is the mux's own
// handler for it, which says whether no route has its path (404) or none its method (405,
// with the methods allowed).
func noRoute(w http.ResponseWriter, r *http.Request, mux http.Handler) {
	rec := &heads{header: http.Header{}}
	mux.ServeHTTP(rec, r)
	path := r.URL.Path
	if len(path) > 200 {
		path = path[:200] + "…"
	}
	e := appapi.Error{Error: fmt.Sprintf("no route for %s %q", r.Method, path), Code: "no_route"}
	status := http.StatusNotFound
	if rec.status == http.StatusMethodNotAllowed {
		status = rec.status
		allow := rec.header.Get("Allow")
		w.Header().Set("Allow", allow)
		e = appapi.Error{Error: fmt.Sprintf("method %q is not allowed on %q; allowed: %s", r.Method, path, allow), Code: "method_not_allowed"}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

// heads is a ResponseWriter that keeps the header and status written to it and drops the
// body.
type heads struct {
	header http.Header
	status int
}

func (h *heads) Header() http.Header         { return h.header }
func (h *heads) WriteHeader(status int)      { h.status = status }
func (h *heads) Write(b []byte) (int, error) { return len(b), nil }
