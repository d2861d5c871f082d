// Package webui is enjin's web view: a read-only dashboard of ring 0's inventory (rings,
// compartments and nodes with their last signed observation; tenants, apps, releases and
// instances), served by the meta API under /ui. Its pages are plain HTML, CSS and JavaScript
// embedded in the binary, sent with a strict Content-Security-Policy (default-src 'self', no
// inline script): everything shown is hostile input and the page renders it as text only.
//
// An operator logs in by posting an admin or reader token (or an htpasswd user's password)
// to /ui/login, never in a URL. Ring 0 checks it as the API would; a tenant's token is
// refused, since the view shows every tenant. A session is a random id in an HttpOnly,
// SameSite=Strict cookie (Secure over TLS), kept in this process's memory only and ending
// at logout or after its lifetime (12 h by default): a restarted ring 0, or another member,
// asks for a new login. The page reads the meta API's JSON with the cookie (the API accepts
// it, for GET only) and learns of changes from a Server-Sent Events stream, /ui/events, fed
// by one poll of digests of the inventory a second while anyone watches.
//
// Only the meta API (services/api) imports webui.
package webui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"time"
)

//go:embed static
var static embed.FS

// Identity is who a session speaks for.
type Identity struct {
	Name  string
	Admin bool
}

// Errors of Config.Authenticate.
var (
	ErrRefused = errors.New("webui: credentials refused")
	ErrTenant  = errors.New("webui: a tenant's token cannot open the web view")
)

// Config configures the web view. Authenticate and Digests are required.
type Config struct {
	// Authenticate checks a token (user empty: a bearer token) or an htpasswd user's
	// password, as the API checks its Authorization header. Errors wrap ErrRefused or
	// ErrTenant, or are the checker's own failure.
	Authenticate func(ctx context.Context, user, secret string) (Identity, error)
	// Digests returns, for each kind of data the page shows ("nodes", "apps"), a digest
	// that changes when that data does. It is called once a second while a page watches.
	Digests func(ctx context.Context) (map[string]string, error)
	Logger  *slog.Logger  // nil discards
	TTL     time.Duration // a session's lifetime; 0 is 12 h
	Poll    time.Duration // how often Digests is called; 0 is 1 s
	Ping    time.Duration // how often an idle event stream gets a comment; 0 is 20 s
}

// UI serves the web view. It is safe for concurrent use.
type UI struct {
	auth     func(ctx context.Context, user, secret string) (Identity, error)
	log      *slog.Logger
	sessions *sessions
	hub      *hub
	ping     time.Duration
	login    *template.Template
	index    []byte
}

// CSP is the Content-Security-Policy of every answer of the web view: its own files only,
// no inline script or style, no framing, forms posting only back to it.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// New checks cfg and prepares the pages.
func New(cfg Config) (*UI, error) {
	if cfg.Authenticate == nil || cfg.Digests == nil {
		return nil, errors.New("webui: Authenticate and Digests are required")
	}
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	u := &UI{auth: cfg.Authenticate, log: cfg.Logger, ping: or(cfg.Ping, 20*time.Second)}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	u.sessions = newSessions(or(cfg.TTL, 12*time.Hour))
	u.hub = newHub(cfg.Digests, or(cfg.Poll, time.Second), u.log)
	var err error
	if u.login, err = template.ParseFS(static, "static/login.html"); err != nil {
		return nil, fmt.Errorf("webui: login page: %w", err)
	}
	if u.index, err = static.ReadFile("static/index.html"); err != nil {
		return nil, fmt.Errorf("webui: index page: %w", err)
	}
	return u, nil
}

// Close ends every event stream and the poll behind them, and waits for them.
func (u *UI) Close() error {
	u.hub.close()
	return nil
}

// secure sets the headers every answer of the web view carries.
func secure(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // no-referrer would make the login post's Origin "null"
	h.Set("Cache-Control", "no-store")
}

// Page serves the dashboard to a session, and sends anyone else to the login page.
func (u *UI) Page(w http.ResponseWriter, r *http.Request) {
	secure(w)
	if _, ok := u.Session(r); !ok {
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(u.index) // a failed write means the client went away
}

// LoginPage serves the login form.
func (u *UI) LoginPage(w http.ResponseWriter, r *http.Request) {
	u.loginForm(w, http.StatusOK, "")
}

func (u *UI) loginForm(w http.ResponseWriter, status int, msg string) {
	secure(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := u.login.Execute(w, struct{ Error string }{msg}); err != nil {
		u.log.Debug("web view: login page not written", "err", err)
	}
}

// staticTypes are the embedded files' content types: fixed here, not read from the
// machine's /etc/mime.types, which may name others.
var staticTypes = map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

// Static serves one of the page's embedded files by name (app.js, style.css), and reports
// whether there is one.
func (u *UI) Static(w http.ResponseWriter, r *http.Request, name string) bool {
	if name != path.Base(name) || staticTypes[path.Ext(name)] == "" {
		return false
	}
	b, err := fs.ReadFile(static, "static/"+name)
	if err != nil {
		return false
	}
	secure(w)
	w.Header().Set("Content-Type", staticTypes[path.Ext(name)])
	_, _ = w.Write(b)
	return true
}

// sameOrigin reports whether a form post came from this site. Browsers send Sec-Fetch-Site,
// or at least Origin, with every POST; a request with neither is not a browser's, and so no
// cross-site forgery.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	return o == scheme+r.Host
}
