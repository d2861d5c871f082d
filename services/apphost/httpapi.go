package apphost

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"enjin/rings"
)

// Handler serves the app operations over HTTP for ring 0's meta API, which authenticates
// callers and forwards their requests with token (the only credential this handler takes).
// Routes (all under /v1/tenants/{tenant}/apps):
//
//	GET    …/apps                          list the tenant's apps
//	POST   …/apps/{app}/releases           deploy a bundle (the body: a gzipped tar)
//	GET    …/apps/{app}/releases           list releases
//	POST   …/apps/{app}/rollback           {"release": n}
//	GET    …/apps/{app}/instances          ps
//	PUT    …/apps/{app}/scale/{type}       {"instances": n}
//	PUT    …/apps/{app}/env                {"env": {...}} (a new release)
//	DELETE …/apps/{app}                    destroy
//	GET    …/apps/{app}/logs?lines=&follow= newline-delimited JSON log lines
func (h *Host) Handler(token string) http.Handler {
	mux := http.NewServeMux()
	p := "/v1/tenants/{tenant}/apps"
	mux.HandleFunc("GET "+p, h.api(func(w http.ResponseWriter, r *http.Request, t rings.TenantID, _ string) (int, any, error) {
		return 200, map[string]any{"apps": h.Apps(t)}, nil
	}))
	mux.HandleFunc("POST "+p+"/{app}/releases", h.api(func(w http.ResponseWriter, r *http.Request, t rings.TenantID, a string) (int, any, error) {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBundle))
		if err != nil {
			return 413, nil, fmt.Errorf("bundle over %d bytes", MaxBundle)
		}
		rel, err := h.Deploy(r.Context(), t, a, b)
		return 201, rel, err
	}))
	mux.HandleFunc("GET "+p+"/{app}/releases", h.api(func(w http.ResponseWriter, r *http.Request, t rings.TenantID, a string) (int, any, error) {
		rs, err := h.Releases(t, a)
		return 200, map[string]any{"releases": rs}, err
	}))
	mux.HandleFunc("POST "+p+"/{app}/rollback", h.api(func(w http.ResponseWriter, r *http.Request, t rings.TenantID, a string) (int, any, error) {
		var in struct {
			Release int `json:"release"`
		}
		if err := decode(w, r, &in); err != nil {
			return 400, nil, err
		}
		rel, err := h.Rollback(r.Context(), t, a, in.Release)
		return 200, rel, err
	}))
	mux.HandleFunc("GET "+p+"/{app}/instances", h.api(func(w http.ResponseWriter, r *http.Request, t rings.TenantID, a string) (int, any, error) {
		ps, err := h.Ps(t, a)
		return 200, map[string]any{"instances": nonNil(ps)}, err
	}))
	mux.HandleFunc("PUT "+p+"/{app}/scale/{type}", h.api(func(w http.ResponseWriter, r *http.Request, t rings.TenantID, a string) (int, any, error) {
		var in struct {
			Instances *int `json:"instances"`
		}
		if err := decode(w, r, &in); err != nil || in.Instances == nil {
			return 400, nil, errors.New(`want {"instances": n}`)
		}
		err := h.Scale(r.Context(), t, a, r.PathValue("type"), *in.Instances)
		ps, _ := h.Ps(t, a)
		return 200, map[string]any{"instances": nonNil(ps)}, err
	}))
	mux.HandleFunc("PUT "+p+"/{app}/env", h.api(func(w http.ResponseWriter, r *http.Request, t rings.TenantID, a string) (int, any, error) {
		var in struct {
			Env map[string]string `json:"env"`
		}
		if err := decode(w, r, &in); err != nil {
			return 400, nil, err
		}
		rel, err := h.SetEnv(r.Context(), t, a, in.Env)
		return 200, rel, err
	}))
	mux.HandleFunc("DELETE "+p+"/{app}", h.api(func(w http.ResponseWriter, r *http.Request, t rings.TenantID, a string) (int, any, error) {
		return 204, nil, h.Destroy(t, a)
	}))
	mux.HandleFunc("GET "+p+"/{app}/logs", h.api(h.serveLogs))
	return &authed{token: token, next: mux}
}

type authed struct {
	token string
	next  http.Handler
}

func (a *authed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
		writeErr(w, 401, errors.New("missing or wrong token"))
		return
	}
	a.next.ServeHTTP(w, r)
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, t rings.TenantID, app string) (int, any, error)

// api validates the tenant and app in the path, runs fn and writes its JSON answer or error.
func (h *Host) api(fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t := rings.TenantID(r.PathValue("tenant"))
		app := r.PathValue("app")
		if t.Validate() != nil || (app != "" && !rings.IsSlug(app)) {
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
	switch {
	case errors.Is(err, ErrNotFound):
		return 404
	case errors.Is(err, rings.ErrBadName):
		return 400
	default:
		return 422 // a bundle or request that cannot be carried out as given
	}
}

func writeErr(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
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

// serveLogs writes the last lines (default 100) and, with follow=1, every new line as it
// comes, one JSON object per line, until the client goes away.
func (h *Host) serveLogs(w http.ResponseWriter, r *http.Request, t rings.TenantID, a string) (int, any, error) {
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
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
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
		}
		if fl != nil {
			fl.Flush()
		}
	}
}

// errDone tells api the handler has written its own answer.
var errDone = errors.New("done")
