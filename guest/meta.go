package guest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"enjin"
	"enjin/keys"
)

// FwCfgName is the fw_cfg file the host puts a VM's metadata in (-fw_cfg name=…,file=…, or
// <sysinfo type='fwcfg'> in libvirt's domain XML).
const FwCfgName = "opt/enjin/meta"

// MetaPath is where the guest reads its metadata once the qemu_fw_cfg module is loaded.
const MetaPath = "/sys/firmware/qemu_fw_cfg/by_name/" + FwCfgName + "/raw"

// MaxMetaSize bounds the metadata; a credential, a key and a few addresses take 2 KiB.
const MaxMetaSize = 64 << 10

// DefaultHeartbeat is the heartbeat period when the metadata names none.
const DefaultHeartbeat = enjin.DefaultHeartbeat

// Bounds of the heartbeat period the metadata may ask for.
const (
	MinHeartbeat = 100 * time.Millisecond
	MaxHeartbeat = 10 * time.Minute
)

// Limits on list fields, so a malformed host cannot make the guest do unbounded work.
const (
	maxAddresses = 16
	maxLinks     = 8
	maxURLs      = 16
	maxSSHKeys   = 64
	maxSSHKey    = 16 << 10
	maxHostname  = 253
)

// Meta is what the host tells a VM about itself, as JSON in fw_cfg (FwCfgName). It carries the
// VM's secrets (its NATS credential and attestation key), so it never travels on a command
// line or the kernel's. Fields the guest does not know are ignored, so an older guest image
// boots on a newer host.
type Meta struct {
	Node      enjin.NodeID   `json:"node"`               // the VM's ring 2 node id
	Tenant    enjin.TenantID `json:"tenant"`             // the tenant it belongs to
	Name      string         `json:"name,omitempty"`     // the tenant's name for it
	Hostname  string         `json:"hostname,omitempty"` // empty: the node id
	Addresses []netip.Prefix `json:"addresses,omitempty"`
	Gateway   netip.Addr     `json:"gateway,omitzero"`      // on a link of Addresses
	Links     []Link         `json:"links,omitempty"`       // NICs on the tenant's networks
	NATS      []string       `json:"nats,omitempty"`        // URLs of the bus, tried in turn
	CA        string         `json:"ca,omitempty"`          // the CA (PEM) the bus is checked by when it speaks TLS
	Creds     string         `json:"creds,omitempty"`       // a .creds file: the VM's user JWT and seed
	Attest    string         `json:"attest_seed,omitempty"` // keys.Attestation.SeedText
	SSHKeys   []string       `json:"ssh_keys,omitempty"`    // authorized_keys lines
	UserData  string         `json:"user_data,omitempty"`
	Heartbeat Duration       `json:"heartbeat,omitzero"` // zero: DefaultHeartbeat
	// Host, if set, makes the VM a ring 1 host rather than a tenant's ring 2 node: it has no
	// tenant, credential or attestation key here, and joins ring 0 with Host's token.
	Host *Host `json:"host,omitempty"`
}

// Host is what a VM that becomes a ring 1 host needs: a one-time join token, ring 0's API
// (through a relay of the node running the VM) and the block its app instances take.
type Host struct {
	Token string       `json:"token"`
	Ring0 string       `json:"ring0"` // http://… base URL of ring 0's API
	Apps  netip.Prefix `json:"apps"`  // the app instances' block, apart from the VM's own addresses
}

// Link is a NIC on one of the tenant's networks, found by its MAC, with its addresses. (The
// first NIC, eth0, is on the host's own network and takes Addresses and Gateway.)
type Link struct {
	MAC       string         `json:"mac"`
	Addresses []netip.Prefix `json:"addresses,omitempty"`
	Routes    []Route        `json:"routes,omitempty"`  // blocks reached through a router on this link
	Forward   bool           `json:"forward,omitempty"` // the VM routes: it forwards between its links
}

// Route is a block (0.0.0.0/0: the default route) reached via a router's address on a link.
type Route struct {
	To  netip.Prefix `json:"to"`
	Via netip.Addr   `json:"via"`
}

// Duration is a time.Duration written the way Go writes one: "5s", "1m30s".
type Duration time.Duration

// MarshalText writes d as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration as time.ParseDuration does.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ErrNoMeta means the host gave the VM no metadata.
var ErrNoMeta = errors.New("guest: no metadata")

// ReadMeta reads and checks the metadata at path (MetaPath in a VM).
func ReadMeta(path string) (*Meta, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s", ErrNoMeta, path)
	}
	if err != nil {
		return nil, fmt.Errorf("guest: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxMetaSize+1))
	if err != nil {
		return nil, fmt.Errorf("guest: read %s: %w", path, err)
	}
	m, err := ParseMeta(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return m, nil
}

// ParseMeta decodes metadata and checks every field it holds: ids, addresses, URLs, the
// credential (which must be the node's) and the attestation key. The credential, key and bus
// URLs may be missing here (New requires them); a malformed one is an error.
func ParseMeta(b []byte) (*Meta, error) {
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("guest: metadata: %d bytes is more than %d", len(b), MaxMetaSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var m Meta
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("guest: metadata: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("guest: metadata: more after the JSON object")
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("guest: metadata: %w", err)
	}
	return &m, nil
}

// check reports the first field that is wrong.
func (m *Meta) check() error {
	if err := m.Node.Validate(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if m.Host != nil {
		if err := m.Host.check(m); err != nil {
			return fmt.Errorf("host: %w", err)
		}
	} else if err := m.Tenant.Validate(); err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	if len(m.Name) > maxHostname || !printable(m.Name) {
		return fmt.Errorf("name %.64q: want at most %d printable characters", m.Name, maxHostname)
	}
	if m.Hostname != "" && !isHostname(m.Hostname) {
		return fmt.Errorf("hostname %.64q: want dot-separated labels of letters, digits and inner hyphens", m.Hostname)
	}
	if err := m.checkNet(); err != nil {
		return err
	}
	if err := checkURLs(m.NATS); err != nil {
		return err
	}
	if err := m.checkKeys(); err != nil {
		return err
	}
	if h := time.Duration(m.Heartbeat); h != 0 && (h < MinHeartbeat || h > MaxHeartbeat) {
		return fmt.Errorf("heartbeat %v: want %v to %v", h, MinHeartbeat, MaxHeartbeat)
	}
	return nil
}

func (m *Meta) checkNet() error {
	if err := checkPrefixes("addresses", m.Addresses); err != nil {
		return err
	}
	onLink := false
	for _, p := range m.Addresses {
		onLink = onLink || (m.Gateway.IsValid() && p.Contains(m.Gateway))
	}
	if len(m.Links) > maxLinks {
		return fmt.Errorf("links: %d is more than %d", len(m.Links), maxLinks)
	}
	for i, l := range m.Links {
		if hw, err := net.ParseMAC(l.MAC); err != nil || len(hw) != 6 || hw.String() != l.MAC {
			return fmt.Errorf("links[%d]: mac %.64q: want a MAC such as 52:54:00:12:34:56", i, l.MAC)
		}
		if err := checkPrefixes(fmt.Sprintf("links[%d].addresses", i), l.Addresses); err != nil {
			return err
		}
		if len(l.Routes) > maxAddresses {
			return fmt.Errorf("links[%d].routes: %d is more than %d", i, len(l.Routes), maxAddresses)
		}
		for j, r := range l.Routes {
			if !r.To.IsValid() || !r.To.Addr().Is4() || r.To.Masked() != r.To || !r.Via.Is4() || r.Via.IsUnspecified() ||
				!slices.ContainsFunc(l.Addresses, func(p netip.Prefix) bool { return p.Contains(r.Via) }) {
				return fmt.Errorf("links[%d].routes[%d]: want an IPv4 block via an address on the link", i, j)
			}
		}
	}
	switch g := m.Gateway; {
	case !g.IsValid():
	case g.Zone() != "" || g.IsUnspecified() || g.IsLoopback() || g.IsMulticast() || g.Is4In6():
		return fmt.Errorf("gateway %s: not a router's address", g)
	case !onLink:
		return fmt.Errorf("gateway %s: on the link of none of the addresses", g)
	}
	return nil
}

func checkPrefixes(what string, ps []netip.Prefix) error {
	if len(ps) > maxAddresses {
		return fmt.Errorf("%s: %d is more than %d", what, len(ps), maxAddresses)
	}
	for i, p := range ps {
		a := p.Addr()
		if !p.IsValid() || a.Zone() != "" || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.Is4In6() {
			return fmt.Errorf("%s[%d] %q: want an address for an interface, with its prefix length", what, i, p)
		}
	}
	return nil
}

func checkURLs(us []string) error {
	if len(us) > maxURLs {
		return fmt.Errorf("nats: %d URLs is more than %d", len(us), maxURLs)
	}
	for i, s := range us {
		u, err := url.Parse(s)
		switch {
		case err != nil:
			return fmt.Errorf("nats[%d]: %w", i, err)
		case u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss":
			return fmt.Errorf("nats[%d] %.64q: want a nats://, tls://, ws:// or wss:// URL", i, s)
		case u.Host == "" || u.Hostname() == "" || strings.ContainsAny(s, ", \t\r\n"):
			return fmt.Errorf("nats[%d] %.64q: want host[:port]", i, s)
		case u.User != nil:
			return fmt.Errorf("nats[%d]: a URL must not carry a password; the credential is in creds", i)
		}
	}
	return nil
}

func (m *Meta) checkKeys() error {
	if m.Creds != "" {
		c, err := keys.ParseCreds([]byte(m.Creds))
		if err != nil {
			return fmt.Errorf("creds: %w", err)
		}
		if c.Name != string(m.Node) {
			return fmt.Errorf("creds: for %q, not for node %s", c.Name, m.Node)
		}
	}
	if m.Attest != "" {
		if _, err := keys.ParseAttestation([]byte(m.Attest)); err != nil {
			return fmt.Errorf("attest_seed: %w", err)
		}
	}
	if len(m.SSHKeys) > maxSSHKeys {
		return fmt.Errorf("ssh_keys: %d is more than %d", len(m.SSHKeys), maxSSHKeys)
	}
	for i, k := range m.SSHKeys {
		if k == "" || len(k) > maxSSHKey || !printable(k) {
			return fmt.Errorf("ssh_keys[%d]: want one line of printable text, at most %d bytes", i, maxSSHKey)
		}
	}
	return nil
}

// check refuses a host part that could not make a ring 1 host: the VM of a tenant, a token
// that is no token, a URL that is no API's base, an instances' block over the VM's own.
func (h *Host) check(m *Meta) error {
	switch {
	case m.Tenant != "" || m.Creds != "" || m.Attest != "":
		return errors.New("a host VM has no tenant, creds or attest_seed: it joins for its own")
	case h.Token == "" || len(h.Token) > enjin.MaxJoinToken || strings.IndexFunc(h.Token, func(r rune) bool {
		return r <= ' ' || r > '~'
	}) >= 0:
		return fmt.Errorf("token: want 1 to %d printable ASCII characters", enjin.MaxJoinToken)
	case !h.Apps.IsValid() || !h.Apps.Addr().Is4() || h.Apps.Masked() != h.Apps || h.Apps.Bits() > 28:
		return fmt.Errorf("apps %s: want an IPv4 block of at least 16 addresses", h.Apps)
	}
	for _, p := range m.Addresses {
		if p.Overlaps(h.Apps) {
			return fmt.Errorf("apps %s: overlaps the VM's address %s", h.Apps, p)
		}
	}
	u, err := url.Parse(h.Ring0)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("ring0 %.64q: want an http:// or https:// base URL", h.Ring0)
	}
	return nil
}

// HostnameOrNode is the name the VM gives itself: Hostname, or else its node id.
func (m *Meta) HostnameOrNode() string {
	if m.Hostname != "" {
		return m.Hostname
	}
	return string(m.Node)
}

// Period is the heartbeat period.
func (m *Meta) Period() time.Duration {
	if m.Heartbeat == 0 {
		return DefaultHeartbeat
	}
	return time.Duration(m.Heartbeat)
}

// WriteNet writes the network configuration for a shell to read, one "key value" a line:
// "hostname NAME", then "address PREFIX" for each address and "gateway ADDR" if there is one,
// then "link MAC PREFIX" for each address of a NIC on a tenant network, "route MAC BLOCK VIA"
// for each block reached through a router there, and "forward 1" if the VM routes. Every value was checked by ParseMeta, so none holds white space or a shell character. No
// address line means the guest should ask DHCP.
func (m *Meta) WriteNet(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "hostname %s\n", m.HostnameOrNode())
	for _, p := range m.Addresses {
		fmt.Fprintf(&b, "address %s\n", p)
	}
	if m.Gateway.IsValid() {
		fmt.Fprintf(&b, "gateway %s\n", m.Gateway)
	}
	forward := false
	for _, l := range m.Links {
		for _, p := range l.Addresses {
			fmt.Fprintf(&b, "link %s %s\n", l.MAC, p)
		}
		for _, r := range l.Routes {
			fmt.Fprintf(&b, "route %s %s %s\n", l.MAC, r.To, r.Via)
		}
		forward = forward || l.Forward
	}
	if forward {
		b.WriteString("forward 1\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// isHostname reports whether s is a DNS name: labels of 1–63 letters, digits and inner
// hyphens, at most 253 bytes.
func isHostname(s string) bool {
	if len(s) > maxHostname {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}
