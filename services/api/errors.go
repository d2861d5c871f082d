package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"enjin/services/images"
	"enjin/services/inventory"
)

// apiError is an error with the HTTP status and short code the caller receives.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// errorBody is every error response.
type errorBody struct {
	Error string `json:"error" api:"required"`
	Code  string `json:"code" api:"required"`
}

func badRequest(code, format string, args ...any) error {
	return &apiError{http.StatusBadRequest, code, fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) error {
	return &apiError{http.StatusUnprocessableEntity, "invalid", fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{http.StatusNotFound, "not_found", fmt.Sprintf(format, args...)}
}

// statusClientClosed answers a request whose client went away before it was served.
const statusClientClosed = 499

var errInternal = &apiError{http.StatusInternalServerError, "internal", "internal error"}

// classify maps err to what the caller is told. The store's sentinels become 4xx; anything
// else is ring 0's fault, logged here and reported without detail.
func (a *API) classify(r *http.Request, err error) *apiError {
	var ae *apiError
	var refused *images.RefusedError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &refused):
		if refused.TooLarge {
			return &apiError{http.StatusRequestEntityTooLarge, "too_large", oneLine(refused.Reason)}
		}
		return &apiError{http.StatusUnprocessableEntity, "refused", "image refused: " + oneLine(refused.Reason)}
	case errors.Is(err, images.ErrNotFound):
		a.log.Error("an image record names a file the store does not hold", "path", r.URL.Path, "err", err)
		return &apiError{http.StatusNotFound, "not_found", "the image's content is missing from the store"}
	case errors.Is(err, inventory.ErrNotFound):
		return &apiError{http.StatusNotFound, "not_found", storeMessage(err)}
	case errors.Is(err, ErrNoRoom):
		msg := strings.TrimSuffix(strings.TrimPrefix(err.Error(), "ring0: "), ": "+ErrNoRoom.Error())
		return &apiError{http.StatusConflict, "no_room", oneLine(msg)}
	case errors.Is(err, ErrNodeFailed):
		return &apiError{http.StatusBadGateway, "node_failed", oneLine(strings.TrimPrefix(err.Error(), "ring0: "))}
	case errors.Is(err, inventory.ErrConflict):
		return &apiError{http.StatusConflict, "conflict", storeMessage(err) + ": read the object again and retry with its new version"}
	case errors.Is(err, inventory.ErrExists):
		return &apiError{http.StatusConflict, "exists", storeMessage(err)}
	case errors.Is(err, inventory.ErrInUse):
		return &apiError{http.StatusConflict, "in_use", oneLine(strings.TrimPrefix(strings.TrimPrefix(err.Error(), "ring0: "), "inventory: "))}
	case errors.Is(err, inventory.ErrInvalid):
		return &apiError{http.StatusUnprocessableEntity, "invalid", storeMessage(err)}
	case errors.Is(err, images.ErrBody):
		// Before the context's end, which a body that stalled past its deadline also causes.
		return &apiError{http.StatusBadRequest, "bad_body", oneLine(strings.TrimPrefix(err.Error(), "images: "))}
	case r.Context().Err() != nil:
		// The client went away, so the work was cut short; it is not ring 0's fault, and
		// hardly anyone reads the answer (499, as nginx logs it).
		a.log.Debug("request canceled", "method", r.Method, "path", r.URL.Path, "err", err)
		return &apiError{statusClientClosed, "canceled", "request canceled by the client"}
	}
	a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return errInternal
}

// storeMessage makes one readable line of a store error.
func storeMessage(err error) string {
	return oneLine(strings.TrimPrefix(err.Error(), "inventory: "))
}

// oneLine flattens s to one line of at most 300 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// fail answers r with err.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := a.classify(r, err)
	if e.status == http.StatusUnauthorized {
		ch := []string{`Bearer realm="enjin"`, `Basic realm="enjin", charset="UTF-8"`}
		if m := r.Header.Get("Sec-Fetch-Mode"); m == "cors" || m == "same-origin" {
			// A page's script (the web view's, its session gone): a Basic challenge would
			// have the browser ask its user for a password over the page.
			ch = ch[:1]
		}
		w.Header()["Www-Authenticate"] = ch
	}
	a.reply(w, e.status, errorBody{Error: e.msg, Code: e.code})
}

// reply writes v as the JSON body of a response with status.
func (a *API) reply(w http.ResponseWriter, status int, v any) {
	if err := writeJSON(w, status, v); err != nil {
		a.log.Error("encode response", "err", err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error","code":"internal"}`)
	}
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if status != http.StatusNoContent && status != http.StatusNotModified {
		_, _ = w.Write(append(b, '\n')) // a failed write means the client went away
	}
	return err
}

// muxWriter turns the plain-text answers of http.ServeMux itself (no route, wrong method,
// redirect to a clean path) into JSON. Route handlers mark it routed and pass through.
type muxWriter struct {
	http.ResponseWriter
	r       *http.Request
	routed  bool // a route's handler is answering
	swallow bool // the mux's own answer was replaced; drop its body
}

func (m *muxWriter) WriteHeader(code int) {
	switch {
	case m.swallow:
	case m.routed:
		m.ResponseWriter.WriteHeader(code)
	default:
		m.swallow = true
		_ = writeJSON(m.ResponseWriter, code, muxError(code, m.r, m.Header()))
	}
}

func (m *muxWriter) Write(b []byte) (int, error) {
	if !m.routed && !m.swallow {
		m.WriteHeader(http.StatusOK)
	}
	if m.swallow {
		return len(b), nil
	}
	return m.ResponseWriter.Write(b)
}

func (m *muxWriter) Unwrap() http.ResponseWriter { return m.ResponseWriter }

func muxError(code int, r *http.Request, h http.Header) errorBody {
	path := r.URL.Path
	if len(path) > 200 {
		path = path[:200] + "…"
	}
	switch code {
	case http.StatusNotFound:
		return errorBody{fmt.Sprintf("no route for %s %q", r.Method, path), "no_route"}
	case http.StatusMethodNotAllowed:
		return errorBody{fmt.Sprintf("method %q is not allowed on %q; allowed: %s", r.Method, path, h.Get("Allow")), "method_not_allowed"}
	case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return errorBody{fmt.Sprintf("moved to %q", h.Get("Location")), "redirect"}
	}
	return errorBody{http.StatusText(code), "http_" + fmt.Sprint(code)}
}

func (a *API) jsonMux() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mux.ServeHTTP(&muxWriter{ResponseWriter: w, r: r}, r)
	})
}
