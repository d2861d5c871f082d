// Package appapi is the contract of ring 1's app API: the routes of the app operations
// (method, path, query parameters, request body and answer types, in one table, Routes) and
// the JSON request bodies and answers that package apphost serves, that ring 0's meta API
// (services/api) forwards and documents in its OpenAPI document, and that the CLI sends and
// reads. apphost registers a handler for each route of the table by its Op, services/api a
// forwarding route and its OpenAPI entry, and the CLI builds paths with Op.Path; each route
// and type is declared here once, so the three cannot drift apart. It imports only rings and
// the standard library; anything may import it.
package appapi

import (
	"time"

	"enjin"
)

// Manifest is what a bundle declares: its process types (from the Procfile, Heroku style:
// `web: ./server`) and, from an optional enjin.json, instances per type, limits, the
// health-check path and environment. apphost.ParseManifest fills in every default, so a
// release's manifest says what it runs with.
type Manifest struct {
	Procfile  map[string]string `json:"procfile"`
	Instances map[string]int    `json:"instances,omitempty"` // every declared type; default 1 for web, 0 for others
	MemoryMB  int               `json:"memory_mb,omitempty"`
	CPUMillis int               `json:"cpu_millis,omitempty"`
	Pids      int               `json:"pids,omitempty"`
	DiskMB    int               `json:"disk_mb,omitempty"`
	TmpMB     int               `json:"tmp_mb,omitempty"`
	Health    string            `json:"health,omitempty"` // origin-form request target; default /
	Env       map[string]string `json:"env,omitempty"`
	// Networks are the tenant's networks every instance joins (besides the node's own, where
	// the router reaches it), with the rule sets its ports there enforce.
	Networks []enjin.AppNetwork `json:"networks,omitempty"`
	// OneHost keeps every instance on the app's home host (enjin.json "spread": false):
	// instances that share what they write in HOME, which is one per host.
	OneHost bool `json:"one_host,omitempty"`
	// Cron are jobs run on a schedule (enjin.json "cron"), by name: each a one-off job of the
	// live release, on the app's home host, never two of one name at once.
	Cron map[string]CronJob `json:"cron,omitempty"`
}

// CronJob is a scheduled job: a cron schedule (five fields, or @hourly, @every 30s, …) and
// the command run then.
type CronJob struct {
	Schedule string `json:"schedule"`
	Command  string `json:"command"`
}

// Release is one immutable, numbered version of an app.
type Release struct {
	Number   int       `json:"number"`
	Digest   string    `json:"digest"`
	Manifest Manifest  `json:"manifest"`
	Created  time.Time `json:"created"`
	Status   string    `json:"status"` // starting, live, superseded, failed
}

// Share is the part of an app's instances one host runs, of an app spread over hosts:
// instance i is slot's if i mod of is slot. The zero value is every instance.
type Share struct {
	Slot int `json:"slot"`
	Of   int `json:"of"`
}

// AppInfo summarizes an app.
type AppInfo struct {
	Tenant    string            `json:"tenant"`
	Name      string            `json:"name"`
	Release   int               `json:"release"` // live release, 0 if none
	Instances map[string]int    `json:"instances"`
	Env       map[string]string `json:"env"`             // values masked unless the caller may see them
	Node      string            `json:"node,omitempty"`  // the ring 1 node running it, as ring 0 lists it
	Share     Share             `json:"share,omitzero"`  // of an app spread over hosts, this host's (ring 0 lists none)
	Nodes     []string          `json:"nodes,omitempty"` // every ring 1 node running its instances, as ring 0 lists it
}

// InstanceInfo is what ps shows of an instance.
type InstanceInfo struct {
	ID       string    `json:"id"`   // the ring 2 node's id
	Name     string    `json:"name"` // type.index, e.g. web.0
	Node     string    `json:"node"`
	Type     string    `json:"type"`
	Release  int       `json:"release"`
	Address  string    `json:"address"`
	Port     int       `json:"port"`
	State    string    `json:"state"`
	Restarts int       `json:"restarts"`
	Started  time.Time `json:"started"`
	PID      int       `json:"pid"`            // of the sandbox's init, as the host sees it; 0 when not running
	Exit     string    `json:"exit,omitempty"` // how the process last ended
	Host     string    `json:"host,omitempty"` // of an app spread over hosts: the ring 1 host it runs on, as ring 0 lists it
	// CPU is the fraction of one core it used since the node's last heartbeat; MemBytes what
	// its cgroup holds now.
	CPU      float64 `json:"cpu"`
	MemBytes uint64  `json:"mem_bytes"`
	// Networks are its ports on its tenant's networks, in the manifest's order.
	Networks []Attachment `json:"networks,omitempty"`
}

// Attachment is an instance's port on one of its tenant's networks, as ps shows it.
type Attachment struct {
	Network   string   `json:"network"`
	Interface string   `json:"interface"` // inside the instance: eth1, eth2, …
	MAC       string   `json:"mac"`
	Addresses []string `json:"addresses"` // with the network's prefix length
}

// LogLine is one line an instance (or a one-off job) wrote.
type LogLine struct {
	Time     time.Time `json:"time"`
	Instance string    `json:"instance"` // the instance's id (a ring 2 node)
	Process  string    `json:"process"`  // type.index, e.g. web.0
	Release  int       `json:"release"`
	Stream   string    `json:"stream"` // stdout or stderr
	Line     string    `json:"line"`
	Host     string    `json:"host,omitempty"` // of an app spread over hosts: the ring 1 host it ran on, as ring 0 tells
}

// JobEnd is the last line of a one-off job's answer: how it ended.
type JobEnd struct {
	Exit  int    `json:"exit"`
	Error string `json:"error,omitempty"` // it could not run, or was stopped
}

// CronStatus is one scheduled job of an app as its home host runs it: what the live release
// says, when it runs next, and how its last run went.
type CronStatus struct {
	Name     string    `json:"name"`
	Schedule string    `json:"schedule"`
	Command  string    `json:"command"`
	Next     time.Time `json:"next,omitzero"`
	Last     *CronRun  `json:"last,omitempty"`
	Runs     int       `json:"runs"`
	Skipped  int       `json:"skipped"` // times it was due while its previous run still ran
}

// CronRun is how one run of a scheduled job went.
type CronRun struct {
	Started time.Time `json:"started"`
	Took    float64   `json:"took_seconds"`
	Exit    int       `json:"exit"`            // -1: it could not run, or was stopped
	Error   string    `json:"error,omitempty"` // why
}

// Event is one step of a deploy as it happens: one JSON object per line of a deploy's
// application/x-ndjson answer. The last event of a stream is "live" (with the release) or
// "failed" (with the error, its code and, for an unhealthy release, the reason).
type Event struct {
	Event     string  `json:"event"` // unpacked, starting, healthy, live, failed
	Release   any     `json:"release,omitempty"`
	Files     int     `json:"files,omitempty"`
	Bytes     int64   `json:"bytes,omitempty"`
	Instances int     `json:"instances,omitempty"`
	Error     string  `json:"error,omitempty"`
	Code      string  `json:"code,omitempty"`
	Reason    *Reason `json:"reason,omitempty"`
}

// Reason says why an instance of a release failed: how its process ended and its last lines.
type Reason struct {
	Instance string   `json:"instance"` // type.index, e.g. web.0
	Exit     string   `json:"exit"`     // "exit status 1", "killed: out of memory (limit 256 MiB)", …
	Logs     []string `json:"logs"`
}

// Error is every error answer of the app API: a one-line message and a short code, as ring
// 0's own errors; with the field of a request or bundle at fault, and the reason of a
// release that was not healthy.
type Error struct {
	Error  string  `json:"error" api:"required"`
	Code   string  `json:"code" api:"required"`
	Field  string  `json:"field,omitempty"`
	Reason *Reason `json:"reason,omitempty"`
}
