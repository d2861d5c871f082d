package apphost

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"enjin"
	"enjin/services/appapi"
)

// Handler is the app API over HTTP: the routes of appapi's table (appapi.Routes), each
// served by the handler of its operation, for ring 0's meta API, which authenticates callers
// and forwards their requests with token (the only credential this handler takes) and says
// who the caller is in Enjin-Caller: admin, tenant or reader (anything else counts as
// reader). Env values go only to the admin and the tenant, and only when asked for
// (reveal=1). The routes marked Ring0 in the table, and DELETE …/apps/{app}?retire=1 (Retire:
// destroy, keeping HOME aside), are ring 0's alone: what re-placing an app on another host
// takes. A route of the table without a handler here, or a handler without a route, is a
// programming error: Handler panics.
func (h *Host) Handler(token string) *API {
	a, err := newAPI(token, h.handlers())
	if err != nil {
		panic(err)
	}
	return a
}

// handlers are the app API's handlers, by operation.
func (h *Host) handlers() map[appapi.Op]http.Handler {
	return map[appapi.Op]http.Handler{
		appapi.OpApps: h.api(func(w http.ResponseWriter, r *http.Request, t enjin.TenantID, _ string) (int, any, error) {
			return 200, appapi.AppList{Apps: h.Apps(t, reveal(r))}, nil
		}),
		appapi.OpDeploy: h.api(h.serveDeploy),
		appapi.OpFiles: h.api(func(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
			var in appapi.FilesQuery
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&in); err != nil {
				return 0, nil, &FieldError{Field: "digests", Msg: "want {\"digests\": [\"sha256-…\", …]}"}
			}
			have, err := h.HaveFiles(t, a, in.Digests)
			return 200, appapi.Files{Have: nonNil(have)}, err
		}),
		appapi.OpReleases: h.api(func(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
			rs, err := h.Releases(t, a)
			for i := range rs {
				rs[i].Manifest.Env = mask(rs[i].Manifest.Env, reveal(r))
			}
			return 200, appapi.ReleaseList{Releases: nonNil(rs)}, err
		}),
		appapi.OpRollback: h.api(func(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
			var in appapi.Rollback
			if err := decode(w, r, &in); err != nil {
				return 400, nil, err
			}
			rel, err := h.Rollback(r.Context(), t, a, in.Release)
			return 200, rel, err
		}),
		appapi.OpInstances: h.api(func(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
			ps, err := h.Ps(t, a)
			return 200, appapi.InstanceList{Instances: nonNil(ps)}, err
		}),
		appapi.OpScale: h.api(func(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
			var in appapi.Scale
			if err := decode(w, r, &in); err != nil || in.Instances == nil {
				return 400, nil, errors.New(`want {"instances": n}`)
			}
			err := h.Scale(r.Context(), t, a, r.PathValue("proctype"), *in.Instances)
			ps, _ := h.Ps(t, a)
			return 200, appapi.InstanceList{Instances: nonNil(ps)}, err
		}),
		appapi.OpEnv: h.api(func(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
			show := r.URL.Query().Get("reveal") == "1"
			if show && !mayReveal(r) {
				return 403, nil, errors.New("only the admin and the app's tenant may see env values")
			}
			env, err := h.Env(t, a, show)
			return 200, appapi.Env{Env: env, Masked: !show}, err
		}),
		appapi.OpPutEnv: h.api(func(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
			var in appapi.EnvPut
			if err := decode(w, r, &in); err != nil {
				return 400, nil, err
			}
			rel, err := h.SetEnv(r.Context(), t, a, in.Env, nil, true, nil)
			return 200, rel, err
		}),
		appapi.OpPatchEnv: h.api(func(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
			var in appapi.EnvPatch
			if err := decode(w, r, &in); err != nil {
				return 400, nil, err
			}
			rel, err := h.SetEnv(r.Context(), t, a, in.Set, in.Unset, false, nil)
			return 200, rel, err
		}),
		appapi.OpDestroy: h.api(func(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
			if r.URL.Query().Get("retire") == "1" { // ring 0's, for a copy of an app that moved
				kept, err := h.Retire(t, a)
				return 200, map[string]any{"home_kept": kept}, err
			}
			return 204, nil, h.Destroy(t, a)
		}),
		appapi.OpLogs: h.api(h.serveLogs),
		appapi.OpRun:  h.api(h.serveRun),
		appapi.OpCron: h.api(func(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
			st, err := h.CronStatus(t, a)
			return 200, appapi.CronList{Cron: nonNil(st)}, err
		}),
		appapi.OpRunning: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"apps": nonNil(h.Running())})
		}),
		appapi.OpExport: h.api(h.serveExport),
		appapi.OpImport: h.api(h.serveImport),
		appapi.OpShare: h.api(func(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
			var in struct {
				Scale map[string]int `json:"scale"`
				Share
			}
			if err := decode(w, r, &in); err != nil {
				return 400, nil, err
			}
			return 204, nil, h.Spread(r.Context(), t, a, in.Scale, in.Share)
		}),
	}
}

// mayReveal is whether the caller (as ring 0 says) may see env values.
func mayReveal(r *http.Request) bool {
	c := r.Header.Get("Enjin-Caller")
	return c == "admin" || c == "tenant"
}

// reveal is whether to show env values: asked for, and allowed.
func reveal(r *http.Request) bool { return r.URL.Query().Get("reveal") == "1" && mayReveal(r) }

type handlerFunc func(w http.ResponseWriter, r *http.Request, t enjin.TenantID, app string) (int, any, error)

// api validates the tenant and app in the path, runs fn and writes its JSON answer or error.
// A panic is recovered (logged, answered 500): it never takes the node down.
func (h *Host) api(fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				h.log.Error("recovered from a panic serving a request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				writeErr(w, 500, errors.New("internal error"))
			}
		}()
		t := enjin.TenantID(r.PathValue("tenant"))
		app := r.PathValue("app")
		if t.Validate() != nil || (app != "" && !enjin.IsSlug(app)) {
			writeErr(w, 400, errors.New("tenant and app names are slugs"))
			return
		}
		status, out, err := fn(w, r, t, app)
		if errors.Is(err, errDone) {
			return
		}
		if err != nil {
			if status < 400 {
				status = errStatus(err)
			}
			if status >= 500 {
				h.log.Error("app request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeErr(w, status, err)
			return
		}
		if status == 204 || out == nil {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(out)
	}
}

func errStatus(err error) int {
	var fe *FieldError
	var de *DeployError
	switch {
	case errors.Is(err, ErrNotFound):
		return 404
	case errors.Is(err, ErrExists):
		return 409
	case errors.Is(err, enjin.ErrBadName):
		return 400
	case errors.Is(err, ErrTooLarge):
		return 413
	case errors.As(err, &fe), errors.Is(err, ErrQuota), errors.As(err, &de):
		return 422 // a bundle or request that cannot be carried out as given
	default:
		return 500
	}
}

// errBody is the JSON of every error answer and of a failed deploy's last event.
func errBody(err error) Event {
	e := Event{Event: "failed", Error: err.Error(), Code: "internal"}
	var fe *FieldError
	var de *DeployError
	switch {
	case errors.As(err, &de):
		e.Code, e.Release, e.Reason = "unhealthy", de.Release, de.Reason
		if errors.As(de.Err, &fe) {
			e.Code = "invalid"
		}
		if errors.Is(de.Err, ErrQuota) {
			e.Code = "quota"
		}
	case errors.As(err, &fe):
		e.Code = "invalid"
	case errors.Is(err, ErrQuota):
		e.Code = "quota"
	case errors.Is(err, ErrNotFound):
		e.Code = "not_found"
	case errors.Is(err, ErrExists):
		e.Code = "exists"
	case errors.Is(err, ErrTooLarge):
		e.Code = "too_large"
	case errors.Is(err, enjin.ErrBadName):
		e.Code = "bad_name"
	}
	return e
}

func writeErr(w http.ResponseWriter, status int, err error) {
	e := errBody(err)
	body := appapi.Error{Error: e.Error, Code: e.Code, Reason: e.Reason}
	var fe *FieldError
	if errors.As(err, &fe) {
		body.Field = fe.Field
	}
	switch {
	case status == 401:
		body.Code = "unauthorized"
	case status == 403:
		body.Code = "forbidden"
	case status < 500 && e.Code == "internal":
		body.Code = "bad_request"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// serveDeploy deploys the request's body. A client that accepts application/x-ndjson hears
// each step as it happens and the outcome as the last event, so a deploy that waits for its
// health checks is never a silent connection; any other gets 201 and the release, or the
// error.
func (h *Host) serveDeploy(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
	deploy := func(progress Progress) (Release, error) {
		return h.Deploy(r.Context(), t, a, http.MaxBytesReader(w, r.Body, MaxBundle+1), progress)
	}
	if pkg := r.URL.Query().Get("package"); pkg != "" { // the client has nothing to send if the app has it
		deploy = func(progress Progress) (Release, error) { return h.DeployPackage(r.Context(), t, a, pkg, progress) }
	} else if r.URL.Query().Get("delta") == "1" { // files the app has go as references
		deploy = func(progress Progress) (Release, error) {
			return h.DeployDelta(r.Context(), t, a, http.MaxBytesReader(w, r.Body, MaxBundle+1), progress)
		}
	}
	if !strings.Contains(r.Header.Get("Accept"), "application/x-ndjson") {
		rel, err := deploy(nil)
		return 201, rel, err
	}
	s := &stream{w: w}
	defer s.stop()
	rel, err := deploy(s.send)
	if !s.started() {
		return 201, rel, err // refused before the release started: an ordinary answer
	}
	if err != nil {
		s.send(errBody(err))
	} else {
		s.send(Event{Event: "live", Release: rel})
	}
	return 0, nil, errDone
}

// stream writes events as NDJSON, flushing each, with a blank line every few seconds while
// nothing happens so no proxy takes the connection for idle.
type stream struct {
	w    http.ResponseWriter
	mu   sync.Mutex
	on   bool
	done chan struct{}
}

func (s *stream) started() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.on
}

func (s *stream) send(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.on {
		s.on = true
		s.w.Header().Set("Content-Type", "application/x-ndjson")
		s.w.WriteHeader(200)
		s.done = make(chan struct{})
		go s.keepAlive(s.done) // ends at stop
	}
	json.NewEncoder(s.w).Encode(e)
	http.NewResponseController(s.w).Flush()
}

func (s *stream) keepAlive(done chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			s.mu.Lock()
			s.w.Write([]byte("\n"))
			http.NewResponseController(s.w).Flush()
			s.mu.Unlock()
		}
	}
}

func (s *stream) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		close(s.done)
		s.done = nil
	}
}

// serveLogs writes the last lines (default 100) and, with follow=1, every new line as it
// comes, one JSON object per line, until the client goes away.
func (h *Host) serveLogs(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
	n, _ := strconv.Atoi(r.URL.Query().Get("lines"))
	if n <= 0 || n > 10000 {
		n = 100
	}
	follow := r.URL.Query().Get("follow") == "1"
	lines, ch, stop, err := h.Logs(t, a, n, follow)
	if err != nil {
		return 0, nil, err
	}
	defer stop()
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, l := range lines {
		enc.Encode(l)
	}
	rc := http.NewResponseController(w)
	rc.Flush()
	if !follow {
		return 0, nil, errDone
	}
	tick := time.NewTicker(15 * time.Second) // keep idle connections alive through proxies
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return 0, nil, errDone
		case l := <-ch:
			enc.Encode(l)
		case <-tick.C:
			w.Write([]byte("\n"))
		}
		rc.Flush()
	}
}

// serveRun runs a one-off job ({"command": "…"}) and streams its output as it comes, one
// JSON LogLine a line, then a JobEnd. A job that cannot start is an error answer instead.
func (h *Host) serveRun(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
	var in appapi.Job
	if err := decode(w, r, &in); err != nil {
		return 400, nil, err
	}
	lines := make(chan LogLine, 256)
	type result struct {
		exit int
		err  error
	}
	done := make(chan result, 1)
	go func() { // ends when the job has ended (or, with the request, been stopped)
		exit, err := h.Run(r.Context(), t, a, in.Command, func(l LogLine) { lines <- l })
		done <- result{exit, err}
	}()
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	started := false
	start := func() {
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
	}
	tick := time.NewTicker(15 * time.Second) // a quiet job's answer stays alive through proxies
	defer tick.Stop()
	for {
		select {
		case l := <-lines:
			start()
			enc.Encode(l)
			rc.Flush()
		case <-tick.C:
			start()
			w.Write([]byte("\n"))
			rc.Flush()
		case res := <-done:
			if res.err != nil && !started && len(lines) == 0 { // it never ran: an error answer
				return 0, nil, res.err
			}
			start()
			for len(lines) > 0 {
				enc.Encode(<-lines)
			}
			end := JobEnd{Exit: res.exit}
			if res.err != nil {
				end.Error = res.err.Error()
			}
			enc.Encode(end)
			rc.Flush()
			return 0, nil, errDone
		}
	}
}

// errDone tells api the handler has written its own answer.
var errDone = errors.New("done")
