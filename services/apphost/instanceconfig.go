package apphost

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"enjin"
)

// InstanceConfig is what one instance of one process type runs with.
type InstanceConfig struct {
	Type    string
	Index   int    // 0 up to the type's count
	ID      string // as Place named it; also ENJIN_INSTANCE
	Command string // for /bin/sh -c
	Health  string // request target to poll; "" for non-web types
	Limits  Limits
	// Networks are the tenant networks the instance joins.
	Networks []enjin.AppNetwork
	// Env is KEY=VALUE: the app's variables sorted by name (the env API's overriding the
	// manifest's), then the platform's, which always win and come in this order: PORT, HOME,
	// PATH (the app's if it set one), ENJIN_APP, ENJIN_TENANT, ENJIN_RELEASE,
	// ENJIN_PROCESS_TYPE, ENJIN_INSTANCE. No name appears twice.
	Env []string
}

// Place names instance index of type typ for Configs: its id (ENJIN_INSTANCE; the host
// shortens long ones to fit interface names) and its HOME (the app's work directory). Only
// the host knows either.
type Place func(typ string, index int) (id, home string)

// Configs expands m for release n of tenant/app with overrides (instances per type set by
// scale, env set by the env API), under policy p, sorted by type and index. It checks m
// again, for a stored release may predate the rules or the policy, and the overrides: a
// refusal is a *FieldError.
func (m Manifest) Configs(tenant, app string, release int, scale map[string]int, env map[string]string, p Policy, place Place) ([]InstanceConfig, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if place == nil {
		return nil, errors.New("apphost: configs: no Place")
	}
	if err := m.check(p); err != nil {
		return nil, err
	}
	counts, err := m.counts(scale, p)
	if err != nil {
		return nil, err
	}
	appEnv, err := m.appEnv(env)
	if err != nil {
		return nil, err
	}
	lim := m.Limits().or(p.Default)
	var out []InstanceConfig
	for _, t := range keysOf(counts) {
		for i := range counts[t] {
			id, home := place(t, i)
			platform := []string{"PORT=" + strconv.Itoa(Port), "HOME=" + home, "PATH=" + appEnv.path,
				"ENJIN_APP=" + app, "ENJIN_TENANT=" + tenant, "ENJIN_RELEASE=" + strconv.Itoa(release),
				"ENJIN_PROCESS_TYPE=" + t, "ENJIN_INSTANCE=" + id}
			for _, kv := range platform {
				if strings.IndexByte(kv, 0) >= 0 {
					return nil, fmt.Errorf("apphost: configs: %q has a NUL byte", kv)
				}
			}
			c := InstanceConfig{Type: t, Index: i, ID: id, Command: m.Procfile[t], Limits: lim, Networks: m.Networks,
				Env: append(append(make([]string, 0, len(appEnv.vars)+len(platform)), appEnv.vars...), platform...)}
			if t == "web" {
				c.Health = m.Health
				if c.Health == "" {
					c.Health = "/"
				}
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// counts is how many instances of each type run: the manifest's (web 1, others 0 if it
// says nothing), scale's where it says.
func (m Manifest) counts(scale map[string]int, p Policy) (map[string]int, error) {
	if err := checkInstances(scale, m.Procfile, "scale", p); err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for t := range m.Procfile {
		n, set := m.Instances[t]
		if !set && t == "web" {
			n = 1
		}
		if s, ok := scale[t]; ok {
			n = s
		}
		counts[t] = n
	}
	return counts, checkTotal(counts, p)
}

type environ struct {
	vars []string // KEY=VALUE sorted, without PATH
	path string
}

// appEnv merges the manifest's env and the env API's, which wins.
func (m Manifest) appEnv(env map[string]string) (environ, error) {
	if err := CheckEnv(env); err != nil {
		return environ{}, err
	}
	merged := make(map[string]string, len(m.Env)+len(env))
	for k, v := range m.Env {
		merged[k] = v
	}
	for k, v := range env {
		merged[k] = v
	}
	if err := CheckEnv(merged); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Msg = "the manifest's and the app's together: " + fe.Msg
		}
		return environ{}, err
	}
	e := environ{path: defaultPATH}
	for _, k := range keysOf(merged) {
		if k == "PATH" {
			e.path = merged[k]
			continue
		}
		e.vars = append(e.vars, k+"="+merged[k])
	}
	return e, nil
}
