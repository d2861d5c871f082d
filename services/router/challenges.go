package router

import (
	"bytes"
	"fmt"
	"strings"
)

// Challenge is an ACME HTTP-01 challenge pending for a custom domain: the router answers
// GET /.well-known/acme-challenge/Token for Domain, in plain HTTP, with KeyAuth.
type Challenge struct {
	Domain  string // lower case, no trailing dot
	Token   string
	KeyAuth string
}

// challengePath is where an ACME server asks for an HTTP-01 key authorization (RFC 8555 §8.3).
const challengePath = "/.well-known/acme-challenge/"

// SetChallenges makes cs the pending ACME challenges, replacing every previous one in one
// step. While a domain has one, the router answers every request under challengePath for it
// itself — the key authorization of a token it holds, 404 for any other — and never passes
// one to an app: only ring 0 answers for a domain, not whichever tenant runs there.
func (r *Router) SetChallenges(cs []Challenge) error {
	m := make(map[string]map[string]string, len(cs))
	for _, c := range cs {
		name := strings.ToLower(strings.TrimSuffix(c.Domain, "."))
		if !validHost([]byte(name)) || strings.HasSuffix(name, r.suffix) {
			return fmt.Errorf("router: challenge for %q: not a host name outside the apps domain", c.Domain)
		}
		if c.Token == "" || strings.Trim(c.Token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return fmt.Errorf("router: challenge for %q: token %q is not base64url", c.Domain, c.Token)
		}
		if m[name] == nil {
			m[name] = map[string]string{}
		}
		m[name][c.Token] = c.KeyAuth
	}
	r.challenges.Store(&m)
	return nil
}

// answerChallenge reports whether the request is one the router answers itself: for a domain
// with a pending challenge, under challengePath.
func (c *conn) answerChallenge(name []byte) bool {
	m := c.r.challenges.Load()
	if m == nil || len(*m) == 0 || !bytes.HasPrefix(c.req.target, []byte(challengePath)) {
		return false
	}
	_, ok := (*m)[string(name)]
	return ok
}

// respondChallenge answers a request under challengePath for a domain with a pending
// challenge: 200 with the key authorization of the token asked for, else 404.
func (c *conn) respondChallenge(name []byte) bool {
	m := *c.r.challenges.Load()
	token := string(c.req.target[len(challengePath):])
	auth, ok := m[string(name)][token]
	if !ok || string(c.req.method) != "GET" && string(c.req.method) != "HEAD" {
		return c.respond(errUnknownHost.status, "no such ACME challenge\n")
	}
	return c.respond(200, auth)
}
