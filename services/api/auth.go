package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"enjin"
	"enjin/services/inventory"
)

// Identity is who a request speaks for. Identities that are not Admin may only read —
// except a tenant's identity, which may do anything to its own tenant's apps and images, read
// public images, and reach nothing else.
type Identity struct {
	Name   string
	Admin  bool
	Tenant enjin.TenantID // set: the identity speaks for this tenant only
	Backup bool           // the backup credential: it may fetch backups and nothing else
}

// Caller is the kind of identity, as ring 1 is told it in the Enjin-Caller header of a
// forwarded app request: "admin", "tenant" (speaking for the tenant in the path) or "reader".
func (id Identity) Caller() string {
	switch {
	case id.Tenant != "":
		return "tenant"
	case id.Backup:
		return "backup"
	case id.Admin:
		return "admin"
	}
	return "reader"
}

// Checker checks a request's Authorization header. It answers ok=false when it does not
// recognise the credentials (the next checker is tried) and an error when it recognises but
// refuses them (401).
type Checker interface {
	Check(r *http.Request) (Identity, bool, error)
}

// access is what a route asks of its caller.
type access int

const (
	public access = iota // no credentials
	reader               // any identity
	admin                // an admin identity
)

// authorize checks r's single Authorization header against the checkers in order and
// whether the identity may call rt. A tenant's identity may call only routes marked tenantOK,
// whose path's tenant check compares with its own once the path is parsed, and routes marked
// tenantOwn, whose handlers keep it to its own tenant's objects.
func (a *API) authorize(r *http.Request, rt route) (Identity, error) {
	switch n := len(r.Header.Values("Authorization")); {
	case n == 0:
		if id, ok := a.uiSession(r); ok {
			if rt.access == admin {
				return id, &apiError{http.StatusForbidden, "forbidden", fmt.Sprintf("%s may only read", id.Name)}
			}
			return id, nil
		}
		return Identity{}, &apiError{http.StatusUnauthorized, "unauthorized", "missing Authorization header"}
	case n > 1:
		return Identity{}, badRequest("bad_request", "more than one Authorization header")
	}
	for _, c := range a.checkers {
		id, ok, err := c.Check(r)
		if err != nil {
			a.log.Info("credentials refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
			return Identity{}, &apiError{http.StatusUnauthorized, "unauthorized", "credentials refused"}
		}
		if !ok {
			continue
		}
		switch {
		case id.Backup:
			if !rt.backupOK {
				return id, &apiError{http.StatusForbidden, "forbidden", "the backup credential may only fetch backups"}
			}
		case id.Tenant != "":
			if !rt.tenantOK && !rt.tenantOwn {
				return id, &apiError{http.StatusForbidden, "forbidden", fmt.Sprintf("%s may only reach its own tenant's apps and images", id.Name)}
			}
		case !id.Admin && (rt.access == admin || r.Method != http.MethodGet && r.Method != http.MethodHead):
			return id, &apiError{http.StatusForbidden, "forbidden", fmt.Sprintf("%s may only read", id.Name)}
		}
		return id, nil
	}
	return Identity{}, &apiError{http.StatusUnauthorized, "unauthorized", "unrecognised credentials: use Bearer or Basic"}
}

// tenantTokens accepts tenant tokens (Bearer et_…) as the tenant they were issued for.
type tenantTokens struct{ store tokenStore }

// tokenStore is the store's tenant-token lookup.
type tokenStore interface {
	TenantForToken(ctx context.Context, tok string) (enjin.TenantID, error)
}

func (c tenantTokens) Check(r *http.Request) (Identity, bool, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !strings.HasPrefix(tok, inventory.TenantTokenPrefix) {
		return Identity{}, false, nil
	}
	t, err := c.store.TenantForToken(r.Context(), tok)
	if err != nil {
		return Identity{}, false, nil // not a tenant's: the other checkers decide
	}
	return Identity{Name: "tenant " + string(t), Tenant: t}, true, nil
}

// tokenChecker accepts one static bearer token as the admin.
type tokenChecker struct {
	sum [sha256.Size]byte // of the token, so comparisons take the same time whatever the length
}

// AdminTokenFile reads the admin's bearer token from path, which must not be readable by
// group or others. The checker accepts "Authorization: Bearer <token>" as the admin.
func AdminTokenFile(path string) (Checker, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("api: admin token: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("api: admin token: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("api: admin token %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("api: admin token %s: mode %v lets group or others read it; chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("api: admin token: %w", err)
	}
	tok := string(bytes.TrimSpace(b))
	if len(tok) < 16 || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return nil, fmt.Errorf("api: admin token %s: want at least 16 printable ASCII characters without spaces", path)
	}
	return &tokenChecker{sum: sha256.Sum256([]byte(tok))}, nil
}

func (c *tokenChecker) Check(r *http.Request) (Identity, bool, error) {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return Identity{}, false, nil
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	if subtle.ConstantTimeCompare(got[:], c.sum[:]) != 1 {
		return Identity{}, false, errors.New("wrong bearer token")
	}
	return Identity{Name: "admin", Admin: true}, true, nil
}

// htpasswd accepts HTTP Basic credentials against bcrypt hashes.
type htpasswd struct {
	users  map[string][]byte // user → bcrypt hash
	admins map[string]bool
	dummy  []byte // compared against for unknown users, so they cost the same time

	mu       sync.Mutex
	verified map[[sha256.Size]byte]string // hash of a header already verified → user
}

const maxVerified = 1024 // cached verifications; bcrypt is deliberately slow

// HtpasswdFile reads bcrypt lines ("user:$2y$…", also $2a$ and $2b$) from path. The
// checker accepts "Authorization: Basic …"; users named in admins are admins, the others may
// only read. Every name in admins must be in the file.
func HtpasswdFile(path string, admins []string) (Checker, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("api: htpasswd: %w", err)
	}
	defer f.Close()
	h := &htpasswd{users: map[string][]byte{}, admins: map[string]bool{}, verified: map[[sha256.Size]byte]string{}}
	cost := bcrypt.DefaultCost
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok || user == "":
			return nil, fmt.Errorf("api: htpasswd %s:%d: want user:hash", path, n)
		case h.users[user] != nil:
			return nil, fmt.Errorf("api: htpasswd %s:%d: user %q listed twice", path, n, user)
		case !strings.HasPrefix(hash, "$2y$") && !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$"):
			return nil, fmt.Errorf("api: htpasswd %s:%d: user %q: only bcrypt hashes ($2y$, $2a$, $2b$) are accepted", path, n, user)
		}
		c, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("api: htpasswd %s:%d: user %q: %w", path, n, user, err)
		}
		cost = max(cost, c)
		h.users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("api: htpasswd %s: %w", path, err)
	}
	if len(h.users) == 0 {
		return nil, fmt.Errorf("api: htpasswd %s: no users", path)
	}
	for _, u := range admins {
		if h.users[u] == nil {
			return nil, fmt.Errorf("api: htpasswd %s: admin %q is not in the file", path, u)
		}
		h.admins[u] = true
	}
	if h.dummy, err = bcrypt.GenerateFromPassword([]byte(rand.Text()), cost); err != nil {
		return nil, fmt.Errorf("api: htpasswd: %w", err)
	}
	return h, nil
}

func (h *htpasswd) Check(r *http.Request) (Identity, bool, error) {
	v := r.Header.Get("Authorization")
	scheme, _, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return Identity{}, false, nil
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return Identity{}, false, errors.New("malformed basic credentials")
	}
	key := sha256.Sum256([]byte(v))
	h.mu.Lock()
	name, seen := h.verified[key]
	h.mu.Unlock()
	if seen {
		return Identity{Name: name, Admin: h.admins[name]}, true, nil
	}
	hash, known := h.users[user]
	if !known {
		hash = h.dummy
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(pass)); err != nil || !known {
		return Identity{}, false, fmt.Errorf("basic credentials of %q refused", user)
	}
	h.mu.Lock()
	if len(h.verified) >= maxVerified {
		clear(h.verified)
	}
	h.verified[key] = user
	h.mu.Unlock()
	return Identity{Name: user, Admin: h.admins[user]}, true, nil
}
