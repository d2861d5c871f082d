package main

import (
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"enjin/services/apphost"
)

// registerLimitFlags registers the flags that bound what apps may use, which up, ring0 and
// ring1 share (ring 0 hands them to the ring 1 nodes it runs).
func registerLimitFlags(fs *pflag.FlagSet, limits, uidRange *string) {
	fs.StringVar(limits, "limits", "", `JSON file of app limits and quotas, e.g. {"default":{"memory_mb":256},"max":{"memory_mb":4096},"max_tenant_instances":50}; what it leaves out keeps the defaults`)
	fs.StringVar(uidRange, "uid-range", "", "FIRST:COUNT of the uids/gids given to apps (default 700000000:100000, above the subordinate ids useradd hands out); must not overlap /etc/subuid, /etc/subgid or existing users")
}

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
