package ring0

import (
	"testing"
	"time"

	"enjin/services/inventory"
)

// TestACMEDue asks for a certificate when one was asked for or failed, once its retry time
// has come, and renews an issued one with less than a third of its lifetime left.
func TestACMEDue(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	issued := func(age, life time.Duration) inventory.ACMEDomain {
		return inventory.ACMEDomain{State: inventory.ACMEIssued, NextTry: now.Add(-age), NotBefore: now.Add(-age), NotAfter: now.Add(life - age)}
	}
	for _, tc := range []struct {
		name string
		d    inventory.ACMEDomain
		want bool
	}{
		{"pending", inventory.ACMEDomain{State: inventory.ACMEPending, NextTry: now.Add(-time.Second)}, true},
		{"failed, retry not yet", inventory.ACMEDomain{State: inventory.ACMEFailed, NextTry: now.Add(time.Minute)}, false},
		{"failed, retry due", inventory.ACMEDomain{State: inventory.ACMEFailed, NextTry: now}, true},
		{"issued a day ago of 90", issued(day, 90*day), false},
		{"issued 59 days ago of 90", issued(59*day, 90*day), false},
		{"issued 61 days ago of 90", issued(61*day, 90*day), true},
		{"issued 5 of 6 days ago", issued(5*day, 6*day), true},
		{"renewal failed, retry not yet", func() inventory.ACMEDomain { d := issued(80*day, 90*day); d.NextTry = now.Add(time.Hour); return d }(), false},
	} {
		if got := acmeDue(tc.d, now); got != tc.want {
			t.Errorf("%s: acmeDue = %t, want %t", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		attempts int
		want     time.Duration
	}{{0, time.Minute}, {1, 2 * time.Minute}, {3, 8 * time.Minute}, {20, acmeMaxRetry}, {1000, acmeMaxRetry}} {
		if got := acmeBackoff(tc.attempts); got != tc.want {
			t.Errorf("acmeBackoff(%d) = %v, want %v", tc.attempts, got, tc.want)
		}
	}
}
