package enjin

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultHeartbeat is how often a ring 1 node sends its heartbeat unless told otherwise;
// liveness counts in these.
const DefaultHeartbeat = 5 * time.Second

// Ring1Options are the command line of `enjin ring1`, one field per flag: ring 0 fills them in
// for the nodes it runs and passes them as Args; cmd/enjin registers Flags and parses them
// back. Values are kept as written (addresses, prefixes and paths as text) and checked when
// the node starts, which reports a mistake in its own words. DefaultRing1Options has the
// defaults.
type Ring1Options struct {
	// Who the node is, when ring 0 launches it, and how it reaches ring 0.
	Node, NATS, Creds, Attest string
	Dir                       string // where the node keeps keys it makes
	CA                        string // the CA ring 0 is checked by: the root's --ca, every command's
	Ring0                     string // ring 0's meta API URL
	Join, JoinFile            string // "-" (the token on stdin), or the token's file
	Leaf                      []string
	Heartbeat                 time.Duration
	LogLevel                  string
	Netns                     string
	Underlay                  string
	NoVMs                     bool
	NATUplinks                []string

	// Hosting apps (with AppsDir).
	AppsDir, AppsAPI, AppsTokenFile string
	AppsTLSCert, AppsTLSKey         string
	Router, RouterTLS               string
	RouterHold                      time.Duration
	AppsDomain, DNS, Bridge, Prefix string
	Limits, UIDRange                string
}

// DefaultRing1Options are the options of a bare `enjin ring1`.
func DefaultRing1Options() Ring1Options {
	return Ring1Options{Heartbeat: DefaultHeartbeat, LogLevel: "info", AppsAPI: "127.0.0.1:7071",
		Router: "127.0.0.1:7080", RouterHold: 2 * time.Second, AppsDomain: "apps.enjin.test",
		DNS: "127.0.0.1:5353", Bridge: "enjin0", Prefix: "100.88.0.0/16"}
}

// A Flag is one field of a command's options on its command line.
type Flag struct {
	Name, Usage string
	// Value is the field: a *string, *bool, *time.Duration or *[]string (comma-separated
	// on the command line, or repeated).
	Value any
	// Root marks a flag of every enjin command (the root's), which a command does not
	// register as its own.
	Root bool
}

// Flags are o's flags, each bound to its field of o, in the order Args renders them.
func (o *Ring1Options) Flags() []Flag {
	return append([]Flag{
		{Name: "node", Value: &o.Node, Usage: "node id"},
		{Name: "nats", Value: &o.NATS, Usage: "NATS URL of ring 0"},
		{Name: "creds", Value: &o.Creds, Usage: "the node's .creds file"},
		{Name: "attest", Value: &o.Attest, Usage: "the node's attestation key file"},
		{Name: "heartbeat", Value: &o.Heartbeat, Usage: "heartbeat interval"},
		{Name: "dir", Value: &o.Dir, Usage: "where the node keeps keys it makes (scoped keys of hosted tenants)"},
		{Name: "ring0", Value: &o.Ring0, Usage: "ring 0's meta API URL: where --join - or --join-file joins, and what the VMs this node runs as ring 1 hosts join through"},
		{Name: "join", Value: &o.Join, Usage: "join with a one-time token read from stdin: --join - (external strategy); needs --ring0"},
		{Name: "join-file", Value: &o.JoinFile, Usage: "join with the one-time token in this file (external strategy); needs --ring0"},
		{Name: "leaf", Value: &o.Leaf, Usage: "reach the bus as a NATS leafnode of these ring 0 hubs (nats://host:port of their --leaf-listen, comma-separated or repeated; tried in order); a node that joined"},
		{Name: "log-level", Value: &o.LogLevel, Usage: "debug, info, warn or error"},
		{Name: "netns", Value: &o.Netns, Usage: "run in this network namespace (a host simulated on this machine, as enjin up --ring1 N runs them)"},
		{Name: "underlay", Value: &o.Underlay, Usage: "IPv4 address tenant networks are carried from (VXLAN); default: the one ring 0's bus is reached from"},
		{Name: "no-vms", Value: &o.NoVMs, Usage: "host no VMs, even where libvirtd answers"},
		{Name: "nat-uplink", Value: &o.NATUplinks, Usage: "interface tenant networks with NAT reach beyond by (repeatable); default: the default route's"},
		{Name: "ca", Value: &o.CA, Root: true},
		{Name: "apps-tls-cert", Value: &o.AppsTLSCert, Usage: "the app API's certificate (PEM, from ring 0's CA), served when --apps-api is beyond loopback (a node that joined keeps the one it was given)"},
		{Name: "apps-tls-key", Value: &o.AppsTLSKey, Usage: "the key of --apps-tls-cert (PEM, mode 0600)"},
		{Name: "apps-dir", Value: &o.AppsDir, Usage: "host tenants' apps, keeping packages and releases here"},
		{Name: "apps-api", Value: &o.AppsAPI, Usage: "the app API's listen address (with --apps-dir)"},
		{Name: "apps-token-file", Value: &o.AppsTokenFile, Usage: "file with the app API's bearer token (with --apps-dir)"},
		{Name: "router", Value: &o.Router, Usage: "the app router's listen address (with --apps-dir)"},
		{Name: "router-tls", Value: &o.RouterTLS, Usage: "where the app router serves custom domains over TLS (with --apps-dir); none by default"},
		{Name: "router-hold", Value: &o.RouterHold, Usage: "how long the router holds a request while no instance of its app can take it (restarting); 0: answer 503 at once"},
		{Name: "apps-domain", Value: &o.AppsDomain, Usage: "app hosts are <app>.<tenant>.<apps-domain>"},
		{Name: "dns", Value: &o.DNS, Usage: "DNS for app names (with --apps-dir)"},
		{Name: "bridge", Value: &o.Bridge, Usage: "bridge the app instances join (with --apps-dir)"},
		{Name: "prefix", Value: &o.Prefix, Usage: "addresses of app instances (with --apps-dir)"},
	}, LimitFlags(&o.Limits, &o.UIDRange)...)
}

// LimitFlags are the flags that bound what apps may use, bound to limits and uidRange: ring 1
// takes them, and `enjin ring0` and `enjin up` take them to hand on to the nodes they run.
func LimitFlags(limits, uidRange *string) []Flag {
	return []Flag{
		{Name: "limits", Value: limits, Usage: `JSON file of app limits and quotas, e.g. {"default":{"memory_mb":256},"max":{"memory_mb":4096},"max_tenant_instances":50}; what it leaves out keeps the defaults`},
		{Name: "uid-range", Value: uidRange, Usage: "FIRST:COUNT of the uids/gids given to apps (default 700000000:100000, above the subordinate ids useradd hands out); must not overlap /etc/subuid, /etc/subgid or existing users"},
	}
}

// Args is the command line of `enjin ring1` with o, after the program's name: the command,
// then, in the order of Flags, each flag whose value differs from DefaultRing1Options.
func (o Ring1Options) Args() []string {
	def := DefaultRing1Options()
	args, flags := []string{"ring1"}, o.Flags()
	for i, d := range def.Flags() {
		args = append(args, flags[i].set(d.Value)...)
	}
	return args
}

// set is the arguments that give f its value where def is the default: none if they agree.
func (f Flag) set(def any) []string {
	name := "--" + f.Name
	switch v := f.Value.(type) {
	case *string:
		if *v != *def.(*string) {
			return []string{name, *v}
		}
	case *time.Duration:
		if *v != *def.(*time.Duration) {
			return []string{name, v.String()}
		}
	case *bool:
		switch {
		case *v == *def.(*bool):
		case *v:
			return []string{name}
		default:
			return []string{name + "=false"}
		}
	case *[]string:
		if !slices.Equal(*v, *def.(*[]string)) {
			return []string{name, csvLine(*v)}
		}
	default:
		panic(fmt.Sprintf("enjin: flag --%s of type %T", f.Name, f.Value))
	}
	return nil
}

// csvLine is list as one comma-separated value, quoted where an item needs it: the way a
// list flag's value is read.
func csvLine(list []string) string {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(list) // a bytes.Buffer takes every write
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}
