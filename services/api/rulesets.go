package api

import (
	"context"
	"net/http"

	"enjin"
	"enjin/services/inventory"
)

// Rulesets is what the rule set routes need from ring 0 beyond the store: a changed rule set
// is carried to every NIC that names it.
type Rulesets interface {
	RulesetChanged(ctx context.Context, t enjin.TenantID, name string) error
}

// RulesetCreate is the body of POST /v1/tenants/{tenant}/rulesets.
type RulesetCreate struct {
	Name  string       `json:"name" api:"required"`
	Rules []enjin.Rule `json:"rules"`
}

func (b *RulesetCreate) validate() error {
	if !enjin.IsSlug(b.Name) {
		return invalid("name %q: want a slug", trunc(b.Name, 80))
	}
	return validRules(b.Rules)
}

// RulesetUpdate is the body of PUT /v1/tenants/{tenant}/rulesets/{ruleset}: the new rules.
type RulesetUpdate struct {
	Rules []enjin.Rule `json:"rules" api:"required"`
}

func (b *RulesetUpdate) validate() error { return validRules(b.Rules) }

func validRules(rs []enjin.Rule) error {
	if len(rs) > enjin.MaxRules {
		return invalid("rules: %d is more than %d", len(rs), enjin.MaxRules)
	}
	for i, r := range rs {
		if err := r.Validate(); err != nil {
			return invalid("rules[%d]: %v", i, err)
		}
		if len(r.Remotes) > 0 {
			return invalid("rules[%d]: remotes: what ring 0 makes of a remote rule set; write remote_ruleset", i)
		}
	}
	return nil
}

// checkRemoteRulesets refuses rules naming a rule set tenant t does not have, but self: a set
// may name itself ("its members talk to each other").
func (a *API) checkRemoteRulesets(c *call, self string, rs []enjin.Rule) error {
	for i, r := range rs {
		if r.RemoteRuleset == "" || r.RemoteRuleset == self {
			continue
		}
		if _, err := a.store.GetRuleset(c.ctx, c.tenant(), r.RemoteRuleset); err != nil {
			return invalid("rules[%d]: remote_ruleset %s: the tenant has no such rule set", i, r.RemoteRuleset)
		}
	}
	return nil
}

type rulesetList struct {
	Rulesets []inventory.Ruleset `json:"rulesets"`
}

func (c *call) ruleset() string { return c.path["ruleset"] }

func (a *API) listRulesets(c *call) error {
	rs, err := a.store.ListRulesets(c.ctx, c.tenant())
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, rulesetList{Rulesets: nonNil(rs)})
	return nil
}

func (a *API) createRuleset(c *call) error {
	if _, err := a.store.GetTenant(c.ctx, c.tenant()); err != nil {
		return err
	}
	b := c.in.(*RulesetCreate)
	if err := a.checkRemoteRulesets(c, b.Name, b.Rules); err != nil {
		return err
	}
	r, err := a.store.CreateRuleset(c.ctx, inventory.Ruleset{ID: inventory.NewID(), Tenant: c.tenant(), Name: b.Name, Rules: b.Rules})
	if err != nil {
		return err
	}
	a.created(c, "/v1/tenants/"+string(r.Tenant)+"/rulesets/"+r.Name, r.Version, r)
	return nil
}

func (a *API) getRuleset(c *call) error {
	r, err := a.store.GetRuleset(c.ctx, c.tenant(), c.ruleset())
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, r.Version, r)
	return nil
}

// updateRuleset saves the new rules and has every NIC naming the set enforce them; if a node
// does not, the rules stay saved and the error says so.
func (a *API) updateRuleset(c *call) error {
	if err := a.checkRemoteRulesets(c, c.ruleset(), c.in.(*RulesetUpdate).Rules); err != nil {
		return err
	}
	r, err := a.store.UpdateRuleset(c.ctx, c.tenant(), c.ruleset(), c.in.(*RulesetUpdate).Rules, c.version)
	if err != nil {
		return err
	}
	if a.rulesets != nil {
		long(c)
		if err := a.rulesets.RulesetChanged(c.ctx, c.tenant(), r.Name); err != nil {
			return err
		}
	}
	a.versioned(c, http.StatusOK, r.Version, r)
	return nil
}

func (a *API) deleteRuleset(c *call) error {
	if err := a.store.DeleteRuleset(c.ctx, c.tenant(), c.ruleset(), c.version); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// rulesetRoutes are a tenant's firewall rule sets.
func (a *API) rulesetRoutes() []route {
	t := "/v1/tenants/{tenant}/rulesets"
	rs := []route{
		{method: "GET", path: t, access: reader, summary: "The tenant's rule sets, by name", status: http.StatusOK, out: rulesetList{}, serve: a.listRulesets},
		{method: "POST", path: t, access: admin, summary: "Create a rule set: ordered rules (direction, protocol, ports, remote block, network or rule set, action, a cap on new connections per source) that NICs naming it enforce",
			body: &RulesetCreate{}, status: http.StatusCreated, out: inventory.Ruleset{}, serve: a.createRuleset},
		{method: "GET", path: t + "/{ruleset}", access: reader, summary: "A rule set; ETag is its version",
			status: http.StatusOK, out: inventory.Ruleset{}, serve: a.getRuleset},
		{method: "PUT", path: t + "/{ruleset}", access: admin, summary: "Replace a rule set's rules; every NIC naming it enforces them before the answer",
			ifMatch: mustMatch, body: &RulesetUpdate{}, status: http.StatusOK, out: inventory.Ruleset{}, serve: a.updateRuleset},
		{method: "DELETE", path: t + "/{ruleset}", access: admin, summary: "Delete a rule set no NIC or port names, nor another set's rule",
			ifMatch: mustMatch, status: http.StatusNoContent, serve: a.deleteRuleset},
	}
	for i := range rs {
		rs[i].tenantOK = true // a tenant manages its own rule sets
	}
	return rs
}
