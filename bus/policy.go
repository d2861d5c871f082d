package bus

import (
	"enjin/keys"
	"enjin/rings"
)

// FlowKind says whether a cross-account flow is a stream (one way) or a service (request and
// one reply).
type FlowKind int

// Flow kinds.
const (
	Stream FlowKind = iota
	Service
)

// Flow is one private export and its import: messages the exporter's users publish on
// Subject reach the importer's users on Local ('*' tokens map by position).
type Flow struct {
	Kind     FlowKind
	Exporter string // account name
	Importer string
	Subject  string // in the exporter's account
	Local    string // in the importer's account
}

// Flows lists every cross-account flow of a cloud with the given tenants (DESIGN §3).
func Flows(tenants []rings.TenantID) []Flow {
	f := []Flow{
		// Observations are requests: ring 0 answers each one after the store commits it (the
		// node's acknowledgement), or with the reason it was rejected.
		{Service, keys.RING0, keys.RING1, R0FromRing1ObsAll, "ring1.*.obs"},
		{Service, keys.RING1, keys.RING0, "ring1.*.cmd.>", "r0.to.ring1.*.cmd.>"},
		{Service, keys.RING0, keys.RING1, Ring0APIAll, "r1.ring0.>"},
		{Stream, keys.RING1, keys.OPS, "ring1.*.obs", "ops.ring1.*.obs"},
		{Stream, keys.RING0, keys.OPS, "events.>", "ops.events.>"},
	}
	for _, t := range tenants {
		acct, ts := keys.TenantAccount(t), string(t)
		f = append(f,
			Flow{Stream, acct, keys.RING1, "ring2.*.obs", "r1.from." + ts + ".*.obs"},
			Flow{Stream, acct, keys.RING1, "ring2.*.log", "r1.from." + ts + ".*.log"},
			Flow{Service, acct, keys.RING1, "ring2.*.cmd.>", "r1.to." + ts + ".*.cmd.>"},
			Flow{Stream, acct, keys.OPS, "ring2.*.obs", OpsTenantObs(t)},
		)
	}
	return f
}

// Ring0Grant bounds the users of RING0: ring 0 supervisors.
func Ring0Grant() keys.Grant {
	return keys.Grant{
		PubAllow: []string{"r0.to.ring1.*.cmd.>", "events.>"},
		SubAllow: []string{R0FromRing1ObsAll, Ring0APIAll, "_INBOX.*.>"},
		Resp:     true,
	}
}

// Ring0Perms are the rights of ring 0 supervisor name: command ring 1 nodes, publish events,
// receive ring 1 observations and service requests, answer them.
func Ring0Perms(name string) keys.Permissions {
	return keys.Permissions{
		PubAllow: []string{"r0.to.ring1.*.cmd.>", "events.>"},
		SubAllow: []string{R0FromRing1ObsAll, Ring0APIAll, Inbox(name) + ".>"},
		Resp:     true,
	}
}

// SysGrant bounds the users of SYS: only ring 0, and only the server's request subjects.
func SysGrant() keys.Grant {
	return keys.Grant{PubAllow: []string{"$SYS.REQ.>"}, SubAllow: []string{"_INBOX.*.>"}}
}

// SysPerms are the rights of ring 0's system user name: push and delete account claims, ask
// servers about themselves.
func SysPerms(name string) keys.Permissions {
	return keys.Permissions{
		PubAllow: []string{"$SYS.REQ.CLAIMS.>", "$SYS.REQ.SERVER.>", "$SYS.REQ.ACCOUNT.>"},
		SubAllow: []string{Inbox(name) + ".>"},
	}
}

// Ring1Grant bounds the users of RING1: ring 1 nodes.
func Ring1Grant() keys.Grant {
	return keys.Grant{
		PubAllow: []string{"ring1.*.obs", "r1.ring0.>", "r1.to.>"},
		SubAllow: []string{"ring1.*.cmd.>", "r1.from.>", "_INBOX.*.>"},
		Resp:     true,
	}
}

// Ring1NodePerms are the rights of ring 1 node n: publish its own observations, ask ring 0's
// services, receive its own commands and replies, answer commands.
func Ring1NodePerms(n rings.NodeID) keys.Permissions {
	return keys.Permissions{
		PubAllow: []string{Ring1Obs(n), "r1.ring0.>"},
		SubAllow: []string{Ring1Cmds(n), Inbox(string(n)) + ".>"},
		Resp:     true,
	}
}

// OpsGrant bounds the users of OPS: watch everything under ops.>, publish nothing.
func OpsGrant() keys.Grant {
	return keys.Grant{SubAllow: []string{OpsAll}, PubDeny: []string{">"}}
}

// OpsPerms are an operator's rights: subscribe to ops.>, publish nothing (not even requests).
func OpsPerms() keys.Permissions {
	return keys.Permissions{SubAllow: []string{OpsAll}, PubDeny: []string{">"}}
}

// TenantGrant bounds every user of a tenant account.
func TenantGrant() keys.Grant {
	return keys.Grant{
		PubAllow: []string{"ring2.*.obs", "ring2.*.log"},
		SubAllow: []string{"ring2.*.cmd.>", "_INBOX.*.>"},
		Resp:     true,
	}
}

// userKeyTemplate stands for the connecting user's public key, which the client proves by
// signing the server's nonce: unlike names and tags, it cannot be chosen to be a wildcard.
const userKeyTemplate = "{{subject()}}"

// TenantScope is the template of the scoped signing key a ring 1 node uses to mint ring 2
// users of a tenant: each user publishes and receives only under its own key. The deny
// entry with the user's name makes the server refuse a name that is not a single token
// (">", white space), on top of the slug check at minting.
func TenantScope(key string) keys.Scope {
	return keys.Scope{
		Key:  key,
		Role: "ring2-node",
		Template: keys.Permissions{
			PubAllow: []string{Ring2Obs(userKeyTemplate), Ring2Log(userKeyTemplate)},
			PubDeny:  []string{"enjin.name-guard.{{name()}}.end"},
			SubAllow: []string{"ring2." + userKeyTemplate + ".cmd.>", Inbox(userKeyTemplate) + ".>"},
			Resp:     true,
		},
		MaxSubs: 100,
		Payload: 64 << 10,
	}
}
