package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"
)

// wrap turns a route into the handler registered on the mux: it checks the request against
// what the route declares, then serves it, answering any error as JSON.
func (a *API) wrap(rt route) http.Handler {
	names := pathWildcards(rt.path)
	var params []string
	for _, p := range rt.query {
		params = append(params, p.name)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m, ok := w.(*muxWriter); ok {
			m.routed = true
		}
		c, err := a.check(rt, names, params, w, r)
		if err == nil {
			err = rt.serve(c)
		}
		if err != nil {
			a.fail(w, r, err)
		}
	})
}

// check authenticates r, then checks its path ids, If-Match, query and body, in that order.
func (a *API) check(rt route, names, params []string, w http.ResponseWriter, r *http.Request) (*call, error) {
	var id Identity
	if rt.access != public {
		var err error
		if id, err = a.authorize(r, rt); err != nil {
			return nil, err
		}
	}
	c := &call{w: w, r: r, ctx: r.Context(), id: id, path: map[string]string{}}
	for _, n := range names {
		wc := wildcards[n]
		v, ok := wc.check(r.PathValue(n))
		if !ok {
			return nil, badRequest("bad_id", "%s %q: want a %s", n, trunc(r.PathValue(n), 80), wc.desc)
		}
		c.path[n] = v
	}
	if id.Tenant != "" && !rt.tenantOwn && c.path["tenant"] != string(id.Tenant) {
		return nil, &apiError{http.StatusForbidden, "forbidden", fmt.Sprintf("%s may not reach tenant %q", id.Name, c.path["tenant"])}
	}
	var err error
	switch rt.ifMatch {
	case mustMatch:
		c.version, err = ifMatch(r)
		c.hasVersion = err == nil
	case mayMatch:
		c.version, c.hasVersion, err = optionalIfMatch(r)
	}
	if err != nil {
		return nil, err
	}
	if c.q, err = parseQuery(r.URL.RawQuery, params, rt.meta); err != nil {
		return nil, err
	}
	if rt.body != nil {
		c.in = rt.newBody()
		if err := a.decode(w, r, c.in, rt.optional); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// recoverPanics turns a panic into a logged 500, so one bad request cannot take ring 0 down.
// Nothing is expected to panic; the tests count these.
func (a *API) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { // the server's own way to abort a response
				panic(v)
			}
			a.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path,
				"panic", v, "stack", string(debug.Stack()))
			if a.onPanic != nil {
				a.onPanic(v)
			}
			if sw, ok := w.(*statusWriter); !ok || sw.status == 0 {
				a.fail(w, r, errInternal)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// accessLog logs one line per request at Debug.
func (a *API) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		a.counts.observe(r, sw.code(), time.Since(start))
		if a.log.Enabled(r.Context(), slog.LevelDebug) {
			a.log.LogAttrs(r.Context(), slog.LevelDebug, "http request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", sw.code()), slog.Duration("duration", time.Since(start)))
		}
	})
}

// statusWriter remembers the status a response was given.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}
