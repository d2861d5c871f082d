package ring0

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"enjin"
	"enjin/services/inventory"
)

// checkRulesets refuses rule sets tenant t does not have.
func (r *Ring0) checkRulesets(ctx context.Context, t enjin.TenantID, names []string) error {
	for _, n := range names {
		if _, err := r.store.GetRuleset(ctx, t, n); err != nil {
			return fmt.Errorf("ring0: ruleset %s/%s: %w", t, n, err)
		}
	}
	return nil
}

// filter is what a NIC naming rule sets enforces: their rules in order, each remote network
// made its blocks (IPv4 and IPv6, a rule for each). Without rule sets, nil: the NIC takes
// whatever its network sends it.
func (r *Ring0) filter(ctx context.Context, t enjin.TenantID, names []string) (*enjin.Filter, error) {
	if len(names) == 0 {
		return nil, nil
	}
	f := &enjin.Filter{Rules: []enjin.Rule{}}
	for _, n := range names {
		rs, err := r.store.GetRuleset(ctx, t, n)
		if err != nil {
			return nil, fmt.Errorf("ring0: ruleset %s/%s: %w", t, n, err)
		}
		for _, rule := range rs.Rules {
			if rule.RemoteRuleset != "" {
				members, err := r.store.RulesetMembers(ctx, t, rule.RemoteRuleset)
				if err != nil {
					return nil, fmt.Errorf("ring0: ruleset %s/%s: remote rule set %s: %w", t, n, rule.RemoteRuleset, err)
				}
				f.Rules = append(f.Rules, membersRules(rule, members)...)
				continue
			}
			if rule.RemoteNetwork == "" {
				f.Rules = append(f.Rules, rule)
				continue
			}
			nw, err := r.store.GetNetwork(ctx, t, rule.RemoteNetwork)
			if err != nil {
				return nil, fmt.Errorf("ring0: ruleset %s/%s: remote network %s: %w", t, n, rule.RemoteNetwork, err)
			}
			rule.RemoteNetwork = ""
			for _, block := range []netip.Prefix{nw.CIDR4, nw.Prefix6} { // a rule for each of its blocks
				if block.IsValid() {
					rule.Remote = block.String()
					f.Rules = append(f.Rules, rule)
				}
			}
		}
	}
	return f, nil
}

// membersRules is rule, whose remote is a rule set, made rules whose remotes are the set's
// members' addresses: one rule for each family that has members. With none, the rule matches
// nothing, and is no rule at all.
func membersRules(rule enjin.Rule, members []netip.Addr) []enjin.Rule {
	rule.RemoteRuleset = ""
	var v4, v6 []string
	for _, a := range members {
		if a.Is4() {
			v4 = append(v4, netip.PrefixFrom(a, 32).String())
		} else {
			v6 = append(v6, netip.PrefixFrom(a, 128).String())
		}
	}
	var out []enjin.Rule
	for _, blocks := range [][]string{v4, v6} {
		if len(blocks) > 0 && len(blocks) <= enjin.MaxRemotes {
			rule.Remotes = blocks
			out = append(out, rule)
		}
	}
	return out
}

// RulesetChanged carries tenant t's changed rule set name to every NIC that names it: each
// VM with one is sent its whole state again, and each node hosting t's apps is told to
// bring its instances' ports up to date. It answers once all their nodes have, or with what
// failed.
func (r *Ring0) RulesetChanged(ctx context.Context, t enjin.TenantID, name string) error {
	return r.reapply(ctx, t, []string{name})
}

// reapply has every NIC and port of tenant t that enforces one of rule sets names enforce
// them as they are now.
func (r *Ring0) reapply(ctx context.Context, t enjin.TenantID, names []string) error {
	vms, err := r.store.ListVMs(ctx, t)
	if err != nil {
		return err
	}
	var errs []error
	for _, vm := range vms {
		if !slices.ContainsFunc(vm.Spec.NICs, func(n inventory.NIC) bool {
			return slices.ContainsFunc(n.Rulesets, func(s string) bool { return slices.Contains(names, s) })
		}) {
			continue
		}
		if _, err := r.applyVM(ctx, vm); err != nil {
			errs = append(errs, err)
		}
	}
	if err := r.networksChanged(ctx, t, nil); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// memberChanges gathers, by tenant, the rule sets whose members changed while their ports
// are being brought up to date, so that many changes at once (a deploy's instances coming up)
// cost a round or two, not one each.
type memberChanges struct {
	mu      sync.Mutex
	pending map[enjin.TenantID][]string
	running map[enjin.TenantID]bool
}

// membersChanged carries a change of who enforces rule sets names (a port made, gone, or
// enforcing others now) to every port whose rules name one of them as their remote. It
// returns at once: the change may be part of answering a node that is asked next.
func (r *Ring0) membersChanged(t enjin.TenantID, names []string) {
	if len(names) == 0 {
		return
	}
	m := &r.members
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending == nil {
		m.pending, m.running = map[enjin.TenantID][]string{}, map[enjin.TenantID]bool{}
	}
	m.pending[t] = append(m.pending[t], names...)
	if m.running[t] {
		return // the round under way takes these too
	}
	m.running[t] = true
	go r.carryMembers(t) // ends when no change of t is left
}

// carryMembers brings t's ports up to date for the changes gathered, round after round,
// until none is left.
func (r *Ring0) carryMembers(t enjin.TenantID) {
	m := &r.members
	for {
		time.Sleep(20 * time.Millisecond) // what comes with this change comes with this round
		m.mu.Lock()
		names := compactSets(m.pending[t])
		delete(m.pending, t)
		if len(names) == 0 {
			delete(m.running, t)
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		r.reapplyNaming(t, names)
	}
}

// reapplyNaming has every NIC and port whose rules name one of rule sets names as their
// remote enforce them with the members as they are now.
func (r *Ring0) reapplyNaming(t enjin.TenantID, names []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sets, err := r.store.ListRulesets(ctx, t)
	if err != nil {
		r.log.Error("rule sets naming others not brought up to date", "tenant", t, "err", err)
		return
	}
	var naming []string
	for _, rs := range sets {
		if slices.ContainsFunc(rs.Rules, func(rule enjin.Rule) bool { return slices.Contains(names, rule.RemoteRuleset) }) {
			naming = append(naming, rs.Name)
		}
	}
	if len(naming) == 0 {
		return
	}
	if err := r.reapply(ctx, t, naming); err != nil {
		r.log.Warn("rule sets naming others not brought up to date everywhere", "tenant", t, "sets", naming, "err", err)
	}
}
