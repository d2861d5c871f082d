package bus

import (
	"strings"

	"enjin"
)

// Every subject enjin uses is built here. Each account sees its own names; the broker's
// exports and imports map one account's names onto another's, always with a prefix naming
// where the message came from (r0.from…, r1.from…, ops…).
//
// Node and tenant ids are validated (slug or UUID) before they reach the bus, so they are
// always exactly one token; user keys (U…) and verbs are single tokens too.

// Verbs of ring 1 commands.
const (
	VerbPing     = "ping"
	VerbDescribe = "describe"
	VerbDrain    = "drain"
	// VerbTenantKey asks a ring 1 node for the public half of the scoped signing key it
	// holds (making it if needed) for a tenant it is to host (TenantKeyRequest → TenantKeyReply).
	VerbTenantKey = "tenant-key"
	// VerbVMApply makes a VM on the node what a enjin.VMRequest says (made, started, stopped,
	// its NICs and volumes as listed) and answers its enjin.VMStatus.
	VerbVMApply = "vm.apply"
	// VerbVMDestroy destroys a VM (VMRef → enjin.VMStatus): its domain, disks and taps.
	VerbVMDestroy = "vm.destroy"
	// VerbVMReboot reboots a running VM (VMRef → enjin.VMStatus).
	VerbVMReboot = "vm.reboot"
	// VerbVMConsole answers the last part of a VM's serial console (VMRef → ConsoleReply).
	VerbVMConsole = "vm.console"
	// VerbVolumeApply makes a volume's file on the node if it is missing (VolumeRequest).
	VerbVolumeApply = "volume.apply"
	// VerbNetworks: a tenant's networks or rule sets changed (NetworksRequest → {}).
	VerbNetworks = "networks"
	// VerbVolumeDelete deletes a volume's file (VolumeRequest).
	VerbVolumeDelete = "volume.delete"
	// VerbBid offers the node a placement (Offer → SignedBid): it answers with what it has
	// free and promises, signed by its attestation key, so the placement stored with the
	// winning bid proves what the winner promised.
	VerbBid = "bid"
	// VerbRoutes tells a node hosting apps where the apps it does not run are (PeerRoutes →
	// {}): its router sends their requests to their hosts' routers.
	VerbRoutes = "routes"
	// VerbDomains gives a node hosting apps every custom domain its router answers for, each
	// with its certificate and private key (Domains → {}). Ring 0 sends it on the node's own
	// command subject, which only that node's user may subscribe to; the node keeps the keys
	// in memory only.
	VerbDomains = "domains"
)

// PeerRoutes lists the apps that run on other hosts than the one told, with their routers.
type PeerRoutes struct {
	Apps []PeerRoute `json:"apps"`
}

// PeerRoute is where one app's requests go: the router (ip:port) of a host running it (an app
// whose instances are spread over hosts is listed once for each).
type PeerRoute struct {
	Tenant enjin.TenantID `json:"tenant"`
	App    string         `json:"app"`
	Router string         `json:"router"`
}

// Domains are the custom domains of every app, as the routers serve them, in Parts messages
// (each well under the bus's payload limit) that all carry the same Set: a node takes the
// domains once it has every part of one set.
type Domains struct {
	Set     string   `json:"set"`   // names this set of domains (a digest of it)
	Part    int      `json:"part"`  // 0 … Parts-1
	Parts   int      `json:"parts"` // at least 1
	Domains []Domain `json:"domains"`
	// Challenges are the ACME HTTP-01 challenges pending for custom domains, which the
	// routers answer themselves (in any part: a node takes those of every part of the set).
	Challenges []Challenge `json:"challenges,omitempty"`
}

// Challenge is an ACME HTTP-01 challenge ring 0 has pending for Domain: the routers answer
// GET /.well-known/acme-challenge/Token for it with KeyAuth.
type Challenge struct {
	Domain  string `json:"domain"`
	Token   string `json:"token"`
	KeyAuth string `json:"key_auth"`
}

// Domain routes a custom domain to a tenant's app: over TLS with Cert and Key (PEM), and in
// plain HTTP, redirected to https if Redirect.
type Domain struct {
	Domain   string         `json:"domain"`
	Tenant   enjin.TenantID `json:"tenant"`
	App      string         `json:"app"`
	Redirect bool           `json:"redirect,omitempty"`
	Cert     string         `json:"cert"`
	Key      string         `json:"key"`
}

// VMRef names one VM of a node.
type VMRef struct {
	ID     enjin.NodeID   `json:"id"`
	Tenant enjin.TenantID `json:"tenant"`
}

// ConsoleReply is the tail of a VM's serial console log.
type ConsoleReply struct {
	Text string `json:"text"`
}

// VolumeRequest names a volume and its size.
type VolumeRequest struct {
	ID     string         `json:"id"`
	Tenant enjin.TenantID `json:"tenant"`
	SizeGB int            `json:"size_gb"`
}

// TenantKeyRequest names the tenant a ring 1 node is to host, and the public key of the
// tenant's NATS account, whose users the node will mint.
type TenantKeyRequest struct {
	Tenant  enjin.TenantID `json:"tenant"`
	Account string         `json:"account"`
}

// RevokeRequest asks ring 0 to revoke a tenant's user (an app instance's identity). Only a
// ring 1 node hosting the tenant may ask; ring 0 knows the caller from the server-attested
// request header.
type RevokeRequest struct {
	Tenant enjin.TenantID `json:"tenant"`
	User   string         `json:"user"`
}

// TenantKeyReply is the public scoped signing key the node will mint the tenant's users with.
type TenantKeyReply struct {
	Key string `json:"key"`
}

// Services ring 0 offers to ring 1 (request/reply).
const (
	ServiceRevoke = "revoke"
	ServiceRenew  = "renew" // a fresh credential for the caller's own key (RenewRequest → RenewReply)
	ServiceImage  = "image" // a piece of an image the caller needs for a VM it runs (ImageRequest → ImageReply)
	ServicePorts  = "ports" // an app instance's ports on its tenant's networks (PortsRequest → PortsReply)
)

// PortsRequest asks ring 0 for the ports app instance Instance of Tenant, run by the calling
// ring 1 node, has on exactly Networks: made where missing, brought up to date (peers, rule
// sets), released where no longer named — none releases them all. With Sweep it instead
// releases every port of the caller's app instances but those of the instances in Keep.
type PortsRequest struct {
	Tenant   enjin.TenantID     `json:"tenant"`
	Instance string             `json:"instance"`
	Networks []enjin.AppNetwork `json:"networks"`
	Sweep    bool               `json:"sweep,omitempty"`
	Keep     []string           `json:"keep,omitempty"`
}

// PortsReply lists an instance's ports, in the order of the request's networks.
type PortsReply struct {
	Ports []AppPort `json:"ports"`
}

// AppPort is an app instance's port on one network: its MAC and its place on the segment.
// Its Filter is never nil: an instance's port takes in only what its rule sets allow.
type AppPort struct {
	Network string        `json:"network"`
	MAC     string        `json:"mac"`
	Segment enjin.Segment `json:"segment"`
}

// NetworksRequest tells a ring 1 node hosting Tenant that its networks or rule sets changed:
// the node asks again for the ports of the tenant's app instances there (VerbNetworks).
type NetworksRequest struct {
	Tenant enjin.TenantID `json:"tenant"`
}

// ImageRequest asks for Length bytes of image Digest from Offset. Ring 0 answers only a node
// that runs a VM booting that image.
type ImageRequest struct {
	Digest string `json:"digest"` // the image's
	Part   string `json:"part"`   // qcow2, kernel or initrd
	Offset int64  `json:"offset"`
	Length int    `json:"length"` // at most MaxImageChunk
}

// ImageReply is a piece of an image; an empty Data at an offset below Size does not happen.
type ImageReply struct {
	Size int64  `json:"size"` // of the whole image
	Data []byte `json:"data"`
}

// MaxImageChunk bounds one ImageReply's data, well within the broker's message size.
const MaxImageChunk = 512 << 10

// RenewRequest asks ring 0 for a fresh credential. It carries nothing: ring 0 learns who is
// asking from the server-attested Nats-Request-Info header, never from the request.
type RenewRequest struct{}

// RenewReply carries the renewed user JWT, for the same key as before.
type RenewReply struct {
	JWT string `json:"jwt"`
}

// ---- RING1 account ----

// Ring1Obs is where ring 1 node n publishes its signed observations.
func Ring1Obs(n enjin.NodeID) string { return "ring1." + string(n) + ".obs" }

// Ring1Cmd is where ring 1 node n receives command verb.
func Ring1Cmd(n enjin.NodeID, verb string) string { return "ring1." + string(n) + ".cmd." + verb }

// Ring1Cmds matches every command for node n.
func Ring1Cmds(n enjin.NodeID) string { return "ring1." + string(n) + ".cmd.>" }

// R1Ring0 is where a ring 1 node sends a request to ring 0's service.
func R1Ring0(service string) string { return "r1.ring0." + service }

// R1FromTenantObs is where ring 1 receives tenant t's ring 2 observations; the last but one
// token is the publishing user's key, which the server enforces.
func R1FromTenantObs(t enjin.TenantID) string { return "r1.from." + string(t) + ".*.obs" }

// R1FromTenantObsAll matches every tenant's ring 2 observations as they reach RING1; ring 0's
// ingest user takes those of VMs, which sign their own.
const R1FromTenantObsAll = "r1.from.*.*.obs"

// R1FromObsKey extracts the tenant and the publishing user's key (which the server enforces)
// from a subject R1FromTenantObsAll matched.
func R1FromObsKey(subject string) (enjin.TenantID, string, bool) {
	rest, ok := strings.CutPrefix(subject, "r1.from.")
	if !ok {
		return "", "", false
	}
	rest, ok = strings.CutSuffix(rest, ".obs")
	t, key, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Contains(key, ".") || enjin.TenantID(t).Validate() != nil || key == "" {
		return "", "", false
	}
	return enjin.TenantID(t), key, true
}

// R1FromTenantLog is where ring 1 receives tenant t's ring 2 log lines.
func R1FromTenantLog(t enjin.TenantID) string { return "r1.from." + string(t) + ".*.log" }

// R1ToTenantCmd is where ring 1 sends command verb to the ring 2 node with user key u.
func R1ToTenantCmd(t enjin.TenantID, u, verb string) string {
	return "r1.to." + string(t) + "." + u + ".cmd." + verb
}

// Ring1ObsAll matches every ring 1 observation; ring 0's ingest user subscribes to it
// inside the RING1 account (see Ring0IngestPerms).
const Ring1ObsAll = "ring1.*.obs"

// Ring1ObsNode extracts the node id from a subject matched by Ring1ObsAll. The token is
// enforced by the server: a ring 1 user may publish only under its own name.
func Ring1ObsNode(subject string) (enjin.NodeID, bool) { return token(subject, "ring1.", ".obs") }

// ---- RING0 account ----

// R0ToRing1Cmd is where ring 0 sends command verb to ring 1 node n.
func R0ToRing1Cmd(n enjin.NodeID, verb string) string {
	return "r0.to.ring1." + string(n) + ".cmd." + verb
}

// Ring0API is where ring 0 answers service requests from ring 1.
func Ring0API(service string) string { return "ring0.api." + service }

// Ring0APIAll matches every ring 0 service subject.
const Ring0APIAll = "ring0.api.>"

// Ring0Seen is where each ring 0 member of a cluster tells the others which nodes it heard
// from (committed observations, deferrals), so whichever leads judges liveness on what all
// of them heard. Only ring 0 users publish or read it.
const Ring0Seen = "ring0.seen"

// Event is where ring 0 publishes an event of kind for operators.
func Event(kind string) string { return "events." + kind }

// ---- tenant accounts (T-<tenant>) ----

// Ring2Obs is where the ring 2 node holding user key u publishes its observations.
func Ring2Obs(u string) string { return "ring2." + u + ".obs" }

// Ring2Log is where the ring 2 node holding user key u publishes log lines.
func Ring2Log(u string) string { return "ring2." + u + ".log" }

// Ring2Cmd is where the ring 2 node holding user key u receives command verb.
func Ring2Cmd(u, verb string) string { return "ring2." + u + ".cmd." + verb }

// ---- OPS account ----

// OpsAll is everything an operator can watch.
const OpsAll = "ops.>"

// OpsRing1Obs is ring 1 node n's observation as operators see it.
func OpsRing1Obs(n enjin.NodeID) string { return "ops.ring1." + string(n) + ".obs" }

// OpsTenantObs matches tenant t's ring 2 observations as operators see them.
func OpsTenantObs(t enjin.TenantID) string { return "ops." + string(t) + ".*.obs" }

// OpsEvent is ring 0's event of kind as operators see it.
func OpsEvent(kind string) string { return "ops.events." + kind }

// ---- inboxes ----

// Inbox is the reply-subject prefix of the user named name. Each user may subscribe only
// under its own prefix, so nobody reads another's replies.
func Inbox(name string) string { return "_INBOX." + name }

func token(subject, prefix, suffix string) (enjin.NodeID, bool) {
	if len(subject) <= len(prefix)+len(suffix) || subject[:len(prefix)] != prefix ||
		subject[len(subject)-len(suffix):] != suffix {
		return "", false
	}
	id := enjin.NodeID(subject[len(prefix) : len(subject)-len(suffix)])
	return id, id.Validate() == nil
}
