package apphost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// Limits bounds one instance.
type Limits struct {
	MemoryMB  int `json:"memory_mb"`
	CPUMillis int `json:"cpu_millis"` // thousandths of a core
	Pids      int `json:"pids"`
	DiskMB    int `json:"disk_mb"` // the app's HOME
	TmpMB     int `json:"tmp_mb"`  // private /tmp (and /dev/shm gets the same bound)
}

// Policy is what a cloud allows: Default fills what a manifest leaves out, Max bounds what
// it asks for.
type Policy struct {
	Default            Limits `json:"default"`
	Max                Limits `json:"max"`
	MaxInstances       int    `json:"max_instances"`        // per process type
	MaxTenantInstances int    `json:"max_tenant_instances"` // all instances of all apps of one tenant on this host
	MaxProcessTypes    int    `json:"max_process_types"`
}

// LoadPolicy reads a policy from a JSON file (as Policy's fields are named); what the file
// leaves out keeps DefaultPolicy's value. The result is validated.
func LoadPolicy(path string) (Policy, error) {
	p := DefaultPolicy()
	b, err := os.ReadFile(path)
	if err != nil {
		return p, fmt.Errorf("apphost: policy: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("apphost: policy %s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("apphost: policy %s: %w", path, err)
	}
	return p, nil
}

// DefaultPolicy is the policy of a cloud that sets none.
func DefaultPolicy() Policy {
	return Policy{
		Default:            Limits{MemoryMB: 256, CPUMillis: 1000, Pids: 256, DiskMB: 1024, TmpMB: 64},
		Max:                Limits{MemoryMB: 4096, CPUMillis: 2000, Pids: 4096, DiskMB: 10240, TmpMB: 1024},
		MaxInstances:       20,
		MaxTenantInstances: 50,
		MaxProcessTypes:    16,
	}
}

// limit describes one field of Limits: its name (as in JSON), unit, the least an instance can
// run with and the most any policy may allow (beyond which sizes overflow or the kernel
// refuses: pids beyond PID_MAX_LIMIT, say).
type limit struct {
	name, unit  string
	floor, ceil int
	of          func(*Limits) *int
}

var limits = [...]limit{
	{"memory_mb", "MiB", 16, 1 << 20, func(l *Limits) *int { return &l.MemoryMB }},
	{"cpu_millis", "thousandths of a core", 10, 1 << 20, func(l *Limits) *int { return &l.CPUMillis }},
	{"pids", "processes", 16, 1 << 22, func(l *Limits) *int { return &l.Pids }},
	{"disk_mb", "MiB", 16, 1 << 30, func(l *Limits) *int { return &l.DiskMB }},
	{"tmp_mb", "MiB", 1, 1 << 20, func(l *Limits) *int { return &l.TmpMB }},
}

func limitField(name string) (limit, bool) {
	for _, f := range limits {
		if f.name == name {
			return f, true
		}
	}
	return limit{}, false
}

// or fills l's zero fields from def.
func (l Limits) or(def Limits) Limits {
	for _, f := range limits {
		if *f.of(&l) == 0 {
			*f.of(&l) = *f.of(&def)
		}
	}
	return l
}

// checkLimits checks what a manifest asks for against p; zero stands for the default.
func checkLimits(l Limits, p Policy) error {
	for _, f := range limits {
		n, hi := *f.of(&l), *f.of(&p.Max)
		if n != 0 && (n < f.floor || n > hi) {
			return &FieldError{Field: f.name, Msg: fmt.Sprintf("%d: want %d–%d %s, or 0 for the default (%d)", n, f.floor, hi, f.unit, *f.of(&p.Default))}
		}
	}
	return nil
}

// Validate reports every way p is unusable: a default or maximum below what an instance can
// run with or beyond what the host can enforce, a default above its maximum, a count below 1.
func (p Policy) Validate() error {
	var errs []error
	for _, f := range limits {
		def, hi := *f.of(&p.Default), *f.of(&p.Max)
		switch {
		case hi < f.floor || hi > f.ceil:
			errs = append(errs, fmt.Errorf("apphost: policy: Max %s %d: want %d–%d", f.name, hi, f.floor, f.ceil))
		case def < f.floor || def > hi:
			errs = append(errs, fmt.Errorf("apphost: policy: Default %s %d: want %d–%d (the maximum)", f.name, def, f.floor, hi))
		}
	}
	for _, c := range []struct {
		name    string
		n, ceil int
	}{{"MaxInstances", p.MaxInstances, 1000}, {"MaxTenantInstances", p.MaxTenantInstances, 100000}, {"MaxProcessTypes", p.MaxProcessTypes, 100}} {
		if c.n < 1 || c.n > c.ceil {
			errs = append(errs, fmt.Errorf("apphost: policy: %s %d: want 1–%d", c.name, c.n, c.ceil))
		}
	}
	return errors.Join(errs...)
}
