package bus

import (
	"cmp"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hdevalence/ed25519consensus"

	"enjin"
	"enjin/keys"
)

// bidDomain separates bid signatures from observations' and every other use of the key: a
// bid can never pass for an observation, nor one for a bid.
const bidDomain = "ENJIN-BID-1\x00"

// Offer is ring 0's offer of a placement to a host: of an app, or of a VM.
type Offer struct {
	ID       string         `json:"id"`             // random: a bid answers this offer only
	Kind     string         `json:"kind,omitempty"` // "" (an app) or PlaceVM
	Tenant   enjin.TenantID `json:"tenant"`
	App      string         `json:"app"`                 // the app's name, or the VM's
	MemoryMB int            `json:"memory_mb,omitempty"` // what a VM needs
}

// PlaceVM is the Kind of an offer to run a VM.
const PlaceVM = "vm"

// Bid is what a host answers an offer with: what it has free now and what it promises.
type Bid struct {
	Offer      string         `json:"offer"`
	Kind       string         `json:"kind,omitempty"` // the offer's
	Node       enjin.NodeID   `json:"node"`
	Tenant     enjin.TenantID `json:"tenant"`
	App        string         `json:"app"`
	At         time.Time      `json:"at"`
	MemFreeMB  int64          `json:"mem_free_mb"` // the host's available memory
	CPUs       int            `json:"cpus"`
	Load1      float64        `json:"load1"`
	Instances  int            `json:"instances"` // app instances (or VMs, for a VM) it runs now
	TenantApps int            `json:"tenant_apps"`
	VMMemoryMB int64          `json:"vm_memory_mb,omitempty"` // for a VM: the memory it offers VMs
	Promise    string         `json:"promise"`
}

// SignedBid is a bid as signed: the exact bytes, the key and the signature. It is what the
// placement record keeps, so anyone can check it later.
type SignedBid struct {
	Bid    []byte `json:"bid"`    // the bid's JSON, exactly as signed
	Signer string `json:"signer"` // attestation public key
	Sig    []byte `json:"sig"`
}

// SignBid signs bid with attestation key k.
func SignBid(k *keys.Attestation, bid Bid) (SignedBid, error) {
	b, err := json.Marshal(bid)
	if err != nil {
		return SignedBid{}, fmt.Errorf("bus: bid: %w", err)
	}
	return SignedBid{Bid: b, Signer: k.Public(), Sig: k.Sign(append([]byte(bidDomain), b...))}, nil
}

// ErrBid is a bid that does not verify or does not answer what it claims to.
var ErrBid = errors.New("bid does not verify")

// Open checks sb's signature by signer — which must be one of keys, the attestation keys its
// node has had — and returns the bid.
func (sb SignedBid) Open(keysOfNode ...string) (Bid, error) {
	var ok bool
	for _, k := range keysOfNode {
		ok = ok || k == sb.Signer
	}
	if !ok {
		return Bid{}, fmt.Errorf("%w: signed by %.16s…, no key of the node", ErrBid, sb.Signer)
	}
	pub, err := keys.ParseAttestationPublic(sb.Signer)
	if err != nil {
		return Bid{}, fmt.Errorf("%w: %v", ErrBid, err)
	}
	if len(sb.Sig) != ed25519.SignatureSize || !ed25519consensus.Verify(pub, append([]byte(bidDomain), sb.Bid...), sb.Sig) {
		return Bid{}, fmt.Errorf("%w: bad signature", ErrBid)
	}
	var bid Bid
	if err := json.Unmarshal(sb.Bid, &bid); err != nil {
		return Bid{}, fmt.Errorf("%w: %v", ErrBid, err)
	}
	return bid, nil
}

// VerifyStoredBid says why raw, the bid a placement record keeps (a SignedBid's JSON), is
// not node's valid bid for tenant's app — or VM, kind PlaceVM — signed by one of registered,
// the attestation keys node has had; "" if it is. Anyone can run it offline: `enjin verify`
// does, for every placement.
func VerifyStoredBid(raw json.RawMessage, kind string, node enjin.NodeID, tenant enjin.TenantID, app string, registered []string) string {
	if len(raw) == 0 || string(raw) == "null" {
		return "no bid stored"
	}
	var sb SignedBid
	if err := json.Unmarshal(raw, &sb); err != nil {
		return "the stored bid is unreadable: " + err.Error()
	}
	bid, err := sb.Open(registered...)
	if err != nil {
		return err.Error()
	}
	if kind == "app" {
		kind = "" // an app's offer names no kind
	}
	if bid.Node != node || bid.Tenant != tenant || bid.App != app || bid.Kind != kind {
		return fmt.Sprintf("the bid is %s's for %s %s/%s", bid.Node, cmp.Or(bid.Kind, "app"), bid.Tenant, bid.App)
	}
	return ""
}

// Answers reports whether bid answers offer o from node: an error says how it does not.
func (bid Bid) Answers(o Offer, node enjin.NodeID) error {
	if bid.Offer != o.ID || bid.Kind != o.Kind || bid.Node != node || bid.Tenant != o.Tenant || bid.App != o.App {
		return fmt.Errorf("%w: a bid of %s for %s/%s (offer %.8s) does not answer %s's offer of %s/%s (%.8s)",
			ErrBid, bid.Node, bid.Tenant, bid.App, bid.Offer, node, o.Tenant, o.App, o.ID)
	}
	return nil
}
