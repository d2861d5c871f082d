package api

import (
	"net/http"
	"net/netip"

	"enjin"
	"enjin/services/inventory"
)

// NetworkCreate is the body of POST /v1/tenants/{tenant}/networks.
type NetworkCreate struct {
	Name     string `json:"name" api:"required"`
	CIDR4    string `json:"cidr4" api:"required"` // an IPv4 block, /8 to /29
	Gateway4 string `json:"gateway,omitempty"`    // in the block; default its first host address
	Prefix6  string `json:"prefix6,omitempty"`    // an IPv6 /64
	DHCP     bool   `json:"dhcp,omitempty"`
	// NAT: the network's ports reach beyond it (IPv4) through ring 1's NAT gateway, at the
	// gateway address on every host carrying it, as far as their rule sets let them out.
	NAT bool `json:"nat,omitempty"`

	cidr4, prefix6 netip.Prefix
	gateway4       netip.Addr
}

func (b *NetworkCreate) validate() error {
	var err error
	if !enjin.IsSlug(b.Name) {
		return invalid("name %q: want a slug", trunc(b.Name, 80))
	}
	if b.Name == enjin.DefaultNetwork {
		return invalid("name %q: the node's own network is called so; choose another", b.Name)
	}
	if b.cidr4, err = netip.ParsePrefix(b.CIDR4); err != nil || !b.cidr4.Addr().Is4() || b.cidr4.Bits() < 8 || b.cidr4.Bits() > 29 {
		return invalid("cidr4 %q: want an IPv4 block from /8 to /29, such as 100.77.0.0/24", trunc(b.CIDR4, 80))
	}
	if b.cidr4.Masked() != b.cidr4 {
		return invalid("cidr4 %q: host bits are set; the block is %s", b.CIDR4, b.cidr4.Masked())
	}
	if b.Gateway4 != "" {
		if b.gateway4, err = netip.ParseAddr(b.Gateway4); err != nil || !b.gateway4.Is4() || !b.cidr4.Contains(b.gateway4) ||
			b.gateway4 == b.cidr4.Addr() || b.gateway4 == lastAddr(b.cidr4) {
			return invalid("gateway %q: want a host address of %s", trunc(b.Gateway4, 80), b.cidr4)
		}
	}
	if b.Prefix6 != "" {
		if b.prefix6, err = netip.ParsePrefix(b.Prefix6); err != nil || b.prefix6.Addr().Is4() || b.prefix6.Bits() != 64 || b.prefix6.Masked() != b.prefix6 {
			return invalid("prefix6 %q: want an IPv6 /64, such as fd00:77::/64", trunc(b.Prefix6, 80))
		}
	}
	return nil
}

// lastAddr is p's broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

type networkList struct {
	Networks []inventory.Network `json:"networks"`
}

func (c *call) network() string { return c.path["network"] }

func (a *API) listNetworks(c *call) error {
	ns, err := a.store.ListNetworks(c.ctx, c.tenant())
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, networkList{Networks: nonNil(ns)})
	return nil
}

func (a *API) createNetwork(c *call) error {
	if _, err := a.store.GetTenant(c.ctx, c.tenant()); err != nil {
		return err
	}
	b := c.in.(*NetworkCreate)
	n, err := a.store.CreateNetwork(c.ctx, inventory.Network{ID: inventory.NewID(), Tenant: c.tenant(), Name: b.Name,
		CIDR4: b.cidr4, Gateway4: b.gateway4, Prefix6: b.prefix6, DHCP: b.DHCP, NAT: b.NAT})
	if err != nil {
		return err
	}
	a.created(c, "/v1/tenants/"+string(n.Tenant)+"/networks/"+n.Name, n.Version, n)
	return nil
}

func (a *API) getNetwork(c *call) error {
	n, err := a.store.GetNetwork(c.ctx, c.tenant(), c.network())
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, n.Version, n)
	return nil
}

func (a *API) deleteNetwork(c *call) error {
	if err := a.store.DeleteNetwork(c.ctx, c.tenant(), c.network(), c.version); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// networkRoutes are a tenant's networks: records of L2 segments with their addresses.
func (a *API) networkRoutes() []route {
	t := "/v1/tenants/{tenant}/networks"
	rs := []route{
		{method: "GET", path: t, access: reader, summary: "The tenant's networks, by name", status: http.StatusOK, out: networkList{}, serve: a.listNetworks},
		{method: "POST", path: t, access: admin, summary: "Create a network: an L2 segment with a VXLAN id of its own, an IPv4 block (not overlapping the tenant's others; other tenants' may), an optional IPv6 /64 and DHCP",
			body: &NetworkCreate{}, status: http.StatusCreated, out: inventory.Network{}, serve: a.createNetwork},
		{method: "GET", path: t + "/{network}", access: reader, summary: "A network; ETag is its version",
			status: http.StatusOK, out: inventory.Network{}, serve: a.getNetwork},
		{method: "DELETE", path: t + "/{network}", access: admin, summary: "Delete a network without ports",
			ifMatch: mustMatch, status: http.StatusNoContent, serve: a.deleteNetwork},
	}
	for i := range rs {
		rs[i].tenantOK = true // a tenant manages its own networks
	}
	return rs
}
