package keys

import (
	"fmt"
	"slices"
	"strings"
)

// Permissions is what a user may do on the bus: subjects it may publish and subscribe to, and
// whether it may reply to requests it receives. An empty allow list means "everything" to
// NATS, so a user meant to publish nothing carries PubDeny [">"].
type Permissions struct {
	PubAllow []string `json:"pub_allow,omitempty"`
	PubDeny  []string `json:"pub_deny,omitempty"`
	SubAllow []string `json:"sub_allow,omitempty"`
	SubDeny  []string `json:"sub_deny,omitempty"`
	Resp     bool     `json:"resp,omitempty"` // may answer one reply per request, within a minute
}

// Grant is the most an issuer may hand out: every user it mints must fit inside it.
type Grant = Permissions

// IsZero reports whether p sets nothing at all.
func (p Permissions) IsZero() bool {
	return len(p.PubAllow)+len(p.PubDeny)+len(p.SubAllow)+len(p.SubDeny) == 0 && !p.Resp
}

// effective returns the allow list NATS will apply: [">"] when allow is empty and nothing
// denies everything, nil when everything is denied.
func effective(allow, deny []string) []string {
	if slices.Contains(deny, ">") {
		return nil
	}
	if len(allow) == 0 {
		return []string{">"}
	}
	return allow
}

func (p Permissions) normalized() Permissions {
	q := p
	q.PubAllow = slices.Clone(effective(p.PubAllow, p.PubDeny))
	q.SubAllow = slices.Clone(effective(p.SubAllow, p.SubDeny))
	return q
}

// Within checks that p grants nothing outside g and returns the permissions to sign: p's, with
// g's deny lists added (a deny in the grant binds everyone below it).
func (p Permissions) Within(g Grant) (Permissions, error) { return p.within(g, false) }

func (p Permissions) within(g Grant, templates bool) (Permissions, error) {
	for _, list := range [][]string{p.PubAllow, p.PubDeny, p.SubAllow, p.SubDeny} {
		for _, s := range list {
			if err := ValidSubject(s, templates); err != nil {
				return Permissions{}, err
			}
		}
	}
	if err := covered("publish", effective(p.PubAllow, p.PubDeny), effective(g.PubAllow, g.PubDeny)); err != nil {
		return Permissions{}, err
	}
	if err := covered("subscribe", effective(p.SubAllow, p.SubDeny), effective(g.SubAllow, g.SubDeny)); err != nil {
		return Permissions{}, err
	}
	if p.Resp && !g.Resp {
		return Permissions{}, fmt.Errorf("keys: reply permission: %w", ErrEscalation)
	}
	out := p
	out.PubDeny = union(p.PubDeny, g.PubDeny)
	out.SubDeny = union(p.SubDeny, g.SubDeny)
	return out, nil
}

func covered(verb string, want, have []string) error {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h string) bool { return Subset(w, h) }) {
			return fmt.Errorf("keys: %s %q: %w", verb, w, ErrEscalation)
		}
	}
	return nil
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Subset reports whether every subject matched by pattern a is also matched by pattern b.
// Template tokens ({{subject()}} and friends) stand for exactly one token, like "*".
func Subset(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i, t := range at {
		if i >= len(bt) {
			return false
		}
		switch h := bt[i]; {
		case h == ">":
			return true
		case h == "*":
			if t == ">" {
				return false
			}
		case t != h: // a literal or template token in b matches only itself
			return false
		}
	}
	return len(at) == len(bt)
}

func isTemplate(tok string) bool { return strings.Contains(tok, "{{") }

// ValidSubject checks a permission subject: non-empty tokens without white space, '>' only as
// the last token, and template tokens only where templates are allowed.
func ValidSubject(s string, templates bool) error {
	if s == "" || len(s) > 512 {
		return fmt.Errorf("keys: subject %q: empty or too long", s)
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("keys: subject %q: empty token", s)
		case strings.ContainsAny(t, " \t\r\n\f\x00"):
			return fmt.Errorf("keys: subject %q: white space", s)
		case t == ">" && i != len(toks)-1:
			return fmt.Errorf("keys: subject %q: '>' before the last token", s)
		case isTemplate(t) && !templates:
			return fmt.Errorf("keys: subject %q: templates are only for scoped signing keys", s)
		}
	}
	return nil
}
