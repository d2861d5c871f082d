package main

import (
	"strconv"
	"strings"

	"enjin/services/apphost"
)

// limitsOf reads the policy file (defaults if "") and the uid range (0, 0 for the default).
func limitsOf(limits, uidRange string) (apphost.Policy, uint32, uint32, error) {
	pol := apphost.DefaultPolicy()
	if limits != "" {
		var err error
		if pol, err = apphost.LoadPolicy(limits); err != nil {
			return pol, 0, 0, usagef("--limits: %v", err)
		}
	}
	if uidRange == "" {
		return pol, 0, 0, nil
	}
	a, b, ok := strings.Cut(uidRange, ":")
	first, err1 := strconv.ParseUint(a, 10, 32)
	count, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil || first < 1000 || count == 0 {
		return pol, 0, 0, usagef("--uid-range %q: want FIRST:COUNT, FIRST at least 1000", uidRange)
	}
	return pol, uint32(first), uint32(count), nil
}
