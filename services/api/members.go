package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"

	"enjin/services/inventory"
)

// memberAdmins accepts the admin token of any ring 0 member as the admin: each member
// announces its token's hash in the store, so an operator's CLI reaches every member with the
// token of its own. The hashes are read from the store at most every refreshEvery; an unknown
// token is left to the other checkers.
type memberAdmins struct {
	store *inventory.Store

	mu      sync.Mutex
	hashes  [][]byte
	fetched time.Time
}

const (
	refreshEvery = 2 * time.Second
	memberTTL    = 24 * time.Hour // a member silent this long: its token is no longer taken
)

func (c *memberAdmins) Check(r *http.Request) (Identity, bool, error) {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.HasPrefix(cred, inventory.TenantTokenPrefix) {
		return Identity{}, false, nil
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	if c.known(r, sum[:], false) || c.known(r, sum[:], true) {
		return Identity{Name: "admin", Admin: true}, true, nil
	}
	return Identity{}, false, nil
}

// known reports whether sum is a member's admin token hash, reading the store again first
// if refresh and the last read is old enough.
func (c *memberAdmins) known(r *http.Request, sum []byte, refresh bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if refresh {
		if time.Since(c.fetched) < refreshEvery {
			return false
		}
		ms, err := c.store.Members(r.Context(), memberTTL)
		if err != nil {
			return false
		}
		c.hashes, c.fetched = c.hashes[:0], time.Now()
		for _, m := range ms {
			c.hashes = append(c.hashes, m.AdminHash)
		}
	}
	found := 0
	for _, h := range c.hashes {
		found |= subtle.ConstantTimeCompare(h, sum)
	}
	return found == 1
}

// memberList is the ring 0 members that answered lately.
type memberList struct {
	Members []inventory.Ring0Member `json:"members"`
}

// membersSeen is how recently a member must have announced itself to be listed.
const membersSeen = 30 * time.Second

func (a *API) members(c *call) error {
	ms, err := a.store.Members(c.ctx, membersSeen)
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, memberList{Members: nonNil(ms)})
	return nil
}
