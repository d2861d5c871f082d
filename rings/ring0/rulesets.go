package ring0

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"enjin/rings"
	"enjin/services/inventory"
)

// checkRulesets refuses rule sets tenant t does not have.
func (r *Ring0) checkRulesets(ctx context.Context, t rings.TenantID, names []string) error {
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
func (r *Ring0) filter(ctx context.Context, t rings.TenantID, names []string) (*rings.Filter, error) {
	if len(names) == 0 {
		return nil, nil
	}
	f := &rings.Filter{Rules: []rings.Rule{}}
	for _, n := range names {
		rs, err := r.store.GetRuleset(ctx, t, n)
		if err != nil {
			return nil, fmt.Errorf("ring0: ruleset %s/%s: %w", t, n, err)
		}
		for _, rule := range rs.Rules {
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

// RulesetChanged carries tenant t's changed rule set name to every NIC that names it: each
// VM with one is sent its whole state again, and each node hosting t's apps is told to
// bring its instances' ports up to date. It answers once all their nodes have, or with what
// failed.
func (r *Ring0) RulesetChanged(ctx context.Context, t rings.TenantID, name string) error {
	vms, err := r.store.ListVMs(ctx, t)
	if err != nil {
		return err
	}
	var errs []error
	for _, vm := range vms {
		if !slices.ContainsFunc(vm.Spec.NICs, func(n inventory.NIC) bool { return slices.Contains(n.Rulesets, name) }) {
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
