package enjin_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"enjin"
)

func TestNodeIDValidate(t *testing.T) {
	good := []string{"n1", "ring1-0000", "a", strings.Repeat("a", 63), "0b7e3f1c-9a4d-4e1b-8c2f-6d5a4b3c2e1f"}
	bad := []string{"", "*", ">", "a.b", "A", "-a", "a-", "a b", "a_b", strings.Repeat("a", 64),
		"0B7E3F1C-9A4D-4E1B-8C2F-6D5A4B3C2E1F", "{{name()}}", "a\x00", "é", "$SYS"}
	for _, s := range good {
		if err := enjin.NodeID(s).Validate(); err != nil {
			t.Errorf("NodeID(%q): %v", s, err)
		}
	}
	for _, s := range bad {
		if err := enjin.NodeID(s).Validate(); !errors.Is(err, enjin.ErrBadName) {
			t.Errorf("NodeID(%q) accepted (err %v)", s, err)
		}
		if err := enjin.TenantID(s).Validate(); err == nil {
			t.Errorf("TenantID(%q) accepted", s)
		}
	}
}

func TestRingValid(t *testing.T) {
	for r, want := range map[enjin.Ring]bool{-1: false, 0: true, 1: true, 2: true, 3: false} {
		if r.Valid() != want {
			t.Errorf("Ring(%d).Valid() = %v", r, !want)
		}
	}
}

func TestRuleRemotes(t *testing.T) {
	base := enjin.Rule{Direction: "in", Protocol: "tcp", Action: "accept"}
	for _, c := range []struct {
		name string
		edit func(*enjin.Rule)
		ok   bool
	}{
		{"a remote rule set", func(r *enjin.Rule) { r.RemoteRuleset = "web" }, true},
		{"members, IPv4", func(r *enjin.Rule) { r.Remotes = []string{"100.64.0.1/32", "100.64.0.2/32"} }, true},
		{"members, IPv6", func(r *enjin.Rule) { r.Remotes = []string{"fd00::1/128"} }, true},
		{"members of two families", func(r *enjin.Rule) { r.Remotes = []string{"100.64.0.1/32", "fd00::1/128"} }, false},
		{"members with host bits", func(r *enjin.Rule) { r.Remotes = []string{"100.64.0.1/24"} }, false},
		{"members and a remote", func(r *enjin.Rule) { r.Remotes, r.Remote = []string{"100.64.0.1/32"}, "100.64.0.0/10" }, false},
		{"a rule set and a network", func(r *enjin.Rule) { r.RemoteRuleset, r.RemoteNetwork = "web", "lan" }, false},
		{"a rule set not a slug", func(r *enjin.Rule) { r.RemoteRuleset = "Web!" }, false},
		{"too many members", func(r *enjin.Rule) {
			for i := range enjin.MaxRemotes + 1 {
				r.Remotes = append(r.Remotes, fmt.Sprintf("100.%d.%d.%d/32", 64+i>>16, i>>8&255, i&255))
			}
		}, false},
	} {
		r := base
		c.edit(&r)
		if err := r.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok %t", c.name, err, c.ok)
		}
	}
}
