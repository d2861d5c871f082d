package bus

import (
	"enjin"
	"enjin/keys"
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
	// Attest makes the server add a Nats-Request-Info header naming the calling account and
	// user to each request of a service flow. It costs a JSON encoding per message, so only
	// services that need to know their caller ask for it.
	Attest bool
}

// Flows lists every cross-account flow of a cloud with the given tenants.
func Flows(tenants []enjin.TenantID) []Flow {
	f := []Flow{
		{Service, keys.RING1, keys.RING0, "ring1.*.cmd.>", "r0.to.ring1.*.cmd.>", false},
		{Service, keys.RING0, keys.RING1, Ring0APIAll, "r1.ring0.>", true},
		{Stream, keys.RING1, keys.OPS, "ring1.*.obs", "ops.ring1.*.obs", false},
		{Stream, keys.RING0, keys.OPS, "events.>", "ops.events.>", false},
	}
	for _, t := range tenants {
		acct, ts := keys.TenantAccount(t), string(t)
		f = append(f,
			Flow{Stream, acct, keys.RING1, "ring2.*.obs", "r1.from." + ts + ".*.obs", false},
			Flow{Stream, acct, keys.RING1, "ring2.*.log", "r1.from." + ts + ".*.log", false},
			Flow{Service, acct, keys.RING1, "ring2.*.cmd.>", "r1.to." + ts + ".*.cmd.>", false},
			Flow{Stream, acct, keys.OPS, "ring2.*.obs", OpsTenantObs(t), false},
		)
	}
	return f
}

// Ring0Grant bounds the users of RING0: ring 0 supervisors.
func Ring0Grant() keys.Grant {
	return keys.Grant{
		PubAllow: []string{"r0.to.ring1.*.cmd.>", "events.>", Ring0Seen},
		SubAllow: []string{Ring0APIAll, "_INBOX.*.>", Ring0Seen},
		Resp:     true,
	}
}

// Ring0Perms are the rights of ring 0 supervisor name: command ring 1 nodes, publish events,
// receive service requests from ring 1 and answer them, share with the other members what
// it heard.
func Ring0Perms(name string) keys.Permissions {
	return keys.Permissions{
		PubAllow: []string{"r0.to.ring1.*.cmd.>", "events.>", Ring0Seen},
		SubAllow: []string{Ring0APIAll, Inbox(name) + ".>", Ring0Seen},
		Resp:     true,
	}
}

// IngestUser is the name of ring 0's observation-ingest user in the RING1 account.
const IngestUser = "ring0-ingest"

// Ring0IngestPerms are the rights of ring 0's ingest user, a member of the RING1 account:
// receive every ring 1 observation and answer each (the acknowledgement after commit, or the
// reason for a rejection) — nothing else. Observations are requests a node makes of its own
// account, so none takes a cross-account hop; the node's name in the subject is enforced by
// the node's own publish permission.
//
// Answers go to any inbox of the account rather than through the broker's response
// permission ("one reply per request delivered"): the broker keeps that by recording every
// request it delivers and pruning the record by walking it, which cost ring 0 a sixth of its
// CPU per observation stored at 30,000/s — about as much as checking the signatures.
// Answering any RING1 inbox gives ring 0 nothing it lacks: it holds the RING1 account's
// signing key. The user still publishes nowhere but inboxes (TestAllowListsHoldOnEveryVerb).
func Ring0IngestPerms() keys.Permissions {
	return keys.Permissions{
		PubAllow: []string{"_INBOX.*.>"},
		SubAllow: []string{Ring1ObsAll, R1FromTenantObsAll},
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
		PubAllow: []string{"ring1.*.obs", "r1.ring0.>", "r1.to.>", "_INBOX.*.>"},
		SubAllow: []string{"ring1.*.cmd.>", "r1.from.>", "_INBOX.*.>", Ring1ObsAll},
		Resp:     true,
	}
}

// Ring1NodePerms are the rights of ring 1 node n: publish its own observations, ask ring 0's
// services, receive its own commands and replies, answer commands.
func Ring1NodePerms(n enjin.NodeID) keys.Permissions {
	return keys.Permissions{
		PubAllow: []string{Ring1Obs(n), "r1.ring0.>"},
		SubAllow: []string{Ring1Cmds(n), Inbox(string(n)) + ".>"},
		Resp:     true,
	}
}

// Ring1ConnTypes are how a ring 1 node's user may connect: as a client, or as a leafnode (a
// node of a remote site reaching the bus through a server of its own).
func Ring1ConnTypes() []string { return []string{"STANDARD", "LEAFNODE"} }

// ClientConnTypes are how every other user that connects from outside ring 0 may: as a
// client only (an operator's nats CLI; tenants' users have it from their scope's template).
func ClientConnTypes() []string { return []string{"STANDARD"} }

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
