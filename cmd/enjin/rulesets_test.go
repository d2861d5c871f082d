package main

import (
	"strings"
	"testing"
)

// A rule written on the command line reads as the API's rule and writes back the same; a
// malformed one is a usage error that says what a rule looks like.
func TestParseRule(t *testing.T) {
	for _, s := range []string{"in tcp 80 accept", "in tcp 8000-8100 from 100.64.0.0/10 accept rate 50",
		"out udp 53 to net:dns drop", "in any from net:lan accept", "in icmp accept", "out any to fd00::/8 drop"} {
		r, err := parseRule(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got := ruleText(r); got != s {
			t.Errorf("%q read and written: %q", s, got)
		}
	}
	for _, s := range []string{"", "in tcp", "in tcp 80", "in tcp 80 to 100.64.0.0/10 accept", "out tcp 80 accept rate 5",
		"in tcp 80 accept rate", "in tcp 80 accept now", "in udp 99999 accept", "in tcp from 1.2.3.4/8 accept", "sideways tcp 80 accept"} {
		if _, err := parseRule(s); err == nil || !strings.Contains(err.Error(), "DIRECTION PROTOCOL") {
			t.Errorf("%q: %v, want a usage error", s, err)
		}
	}
}
