package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"net/http"
	"sync"
	"time"
)

// CookieName is the session cookie's name.
const CookieName = "enjin_ui"

// maxSessions bounds the sessions kept; past it, expired ones are dropped first, then the
// oldest.
const maxSessions = 10000

// sessions maps a session id's hash to who it speaks for until when. Only hashes are kept, so
// even a dump of this process's memory gives no cookie to replay.
type sessions struct {
	ttl time.Duration
	now func() time.Time

	mu   sync.Mutex
	byID map[[sha256.Size]byte]session
}

type session struct {
	id      Identity
	created time.Time
	expires time.Time
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, now: time.Now, byID: map[[sha256.Size]byte]session{}}
}

// start makes a new session for id and returns its random id.
func (s *sessions) start(id Identity) (string, time.Time) {
	sid := rand.Text() + rand.Text() // 260 bits
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= maxSessions {
		s.prune(now)
	}
	exp := now.Add(s.ttl)
	s.byID[sha256.Sum256([]byte(sid))] = session{id: id, created: now, expires: exp}
	return sid, exp
}

// prune drops expired sessions and, if that is not enough, the oldest. Called with mu held.
func (s *sessions) prune(now time.Time) {
	var oldest [sha256.Size]byte
	var at time.Time
	for k, v := range s.byID {
		if !now.Before(v.expires) {
			delete(s.byID, k)
		} else if at.IsZero() || v.created.Before(at) {
			oldest, at = k, v.created
		}
	}
	if len(s.byID) >= maxSessions {
		delete(s.byID, oldest)
	}
}

func (s *sessions) lookup(sid string) (Identity, bool) {
	k := sha256.Sum256([]byte(sid))
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.byID[k]
	if ok && !s.now().Before(v.expires) {
		delete(s.byID, k)
		ok = false
	}
	return v.id, ok
}

func (s *sessions) end(sid string) {
	s.mu.Lock()
	delete(s.byID, sha256.Sum256([]byte(sid)))
	s.mu.Unlock()
}

// Session returns who r's session cookie speaks for, if it names a live session.
func (u *UI) Session(r *http.Request) (Identity, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return Identity{}, false
	}
	return u.sessions.lookup(c.Value)
}

// maxForm bounds a login form's body.
const maxForm = 8 << 10

// Login checks the posted token (form fields token, and user for an htpasswd user) and
// starts a session: 303 to the dashboard with the cookie. A refused token is 401 and a
// tenant's 403, each with the form again and no session.
func (u *UI) Login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		u.loginForm(w, http.StatusForbidden, "This form must be posted from this site.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		u.loginForm(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	user, secret := r.PostForm.Get("user"), r.PostForm.Get("token")
	if secret == "" {
		u.loginForm(w, http.StatusUnauthorized, "Enter a token.")
		return
	}
	id, err := u.auth(r.Context(), user, secret)
	switch {
	case errors.Is(err, ErrTenant):
		u.log.Info("web view: a tenant's token refused", "remote", r.RemoteAddr)
		u.loginForm(w, http.StatusForbidden, "A tenant's token cannot open the web view: it shows every tenant. Use an admin or reader token.")
		return
	case err != nil:
		u.log.Info("web view: login refused", "remote", r.RemoteAddr, "err", err)
		u.loginForm(w, http.StatusUnauthorized, "That token was refused.")
		return
	}
	if c, err := r.Cookie(CookieName); err == nil {
		u.sessions.end(c.Value) // a new login replaces the old session
	}
	sid, exp := u.sessions.start(id)
	u.log.Info("web view: logged in", "who", id.Name, "remote", r.RemoteAddr)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: sid, Path: "/", Expires: exp,
		MaxAge: int(u.sessions.ttl.Seconds()), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	secure(w)
	http.Redirect(w, r, "/ui", http.StatusSeeOther)
}

// Logout ends the request's session and clears its cookie: 303 to the login page.
func (u *UI) Logout(w http.ResponseWriter, r *http.Request) {
	secure(w)
	if !sameOrigin(r) {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if c, err := r.Cookie(CookieName); err == nil {
		u.sessions.end(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}
