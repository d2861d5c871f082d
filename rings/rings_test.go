package rings_test

import (
	"errors"
	"strings"
	"testing"

	"enjin/rings"
)

func TestNodeIDValidate(t *testing.T) {
	good := []string{"n1", "ring1-0000", "a", strings.Repeat("a", 63), "0b7e3f1c-9a4d-4e1b-8c2f-6d5a4b3c2e1f"}
	bad := []string{"", "*", ">", "a.b", "A", "-a", "a-", "a b", "a_b", strings.Repeat("a", 64),
		"0B7E3F1C-9A4D-4E1B-8C2F-6D5A4B3C2E1F", "{{name()}}", "a\x00", "é", "$SYS"}
	for _, s := range good {
		if err := rings.NodeID(s).Validate(); err != nil {
			t.Errorf("NodeID(%q): %v", s, err)
		}
	}
	for _, s := range bad {
		if err := rings.NodeID(s).Validate(); !errors.Is(err, rings.ErrBadName) {
			t.Errorf("NodeID(%q) accepted (err %v)", s, err)
		}
		if err := rings.TenantID(s).Validate(); err == nil {
			t.Errorf("TenantID(%q) accepted", s)
		}
	}
}

func TestRingValid(t *testing.T) {
	for r, want := range map[rings.Ring]bool{-1: false, 0: true, 1: true, 2: true, 3: false} {
		if r.Valid() != want {
			t.Errorf("Ring(%d).Valid() = %v", r, !want)
		}
	}
}
