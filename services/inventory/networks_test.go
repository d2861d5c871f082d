package inventory_test

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"enjin"
	"enjin/services/inventory"
)

func uuid(kind, i int) string { return fmt.Sprintf("6f1d2b8e-%04x-4000-8000-%012x", kind, i) }

// Networks: a VNI each, no overlap within a tenant but the same block in another tenant, a
// gateway inside the block, and no delete while ports remain.
func TestNetworks(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	for _, tn := range []string{"acme", "beta"} {
		if _, err := s.CreateTenant(ctx, inventory.Tenant{ID: enjin.TenantID(tn)}); err != nil {
			t.Fatal(err)
		}
	}
	net1, err := s.CreateNetwork(ctx, inventory.Network{ID: uuid(1, 1), Tenant: "acme", Name: "net1",
		CIDR4: netip.MustParsePrefix("100.77.0.0/24"), Prefix6: netip.MustParsePrefix("fd00:77::/64"), DHCP: true})
	if err != nil || net1.VNI < 4096 || net1.Gateway4 != netip.MustParseAddr("100.77.0.1") || net1.Version != 1 {
		t.Fatalf("create: %+v %v", net1, err)
	}
	for _, tc := range []struct {
		what string
		n    inventory.Network
		want error
	}{
		{"the same name", inventory.Network{Name: "net1", CIDR4: netip.MustParsePrefix("100.78.0.0/24")}, inventory.ErrExists},
		{"an overlapping block", inventory.Network{Name: "net2", CIDR4: netip.MustParsePrefix("100.77.0.128/25")}, inventory.ErrInvalid},
		{"a block around it", inventory.Network{Name: "net2", CIDR4: netip.MustParsePrefix("100.76.0.0/14")}, inventory.ErrInvalid},
		{"an overlapping IPv6 prefix", inventory.Network{Name: "net2", CIDR4: netip.MustParsePrefix("100.78.0.0/24"),
			Prefix6: netip.MustParsePrefix("fd00:77::/64")}, inventory.ErrInvalid},
		{"a gateway outside", inventory.Network{Name: "net2", CIDR4: netip.MustParsePrefix("100.78.0.0/24"),
			Gateway4: netip.MustParseAddr("100.79.0.1")}, inventory.ErrInvalid},
		{"the broadcast as gateway", inventory.Network{Name: "net2", CIDR4: netip.MustParsePrefix("100.78.0.0/24"),
			Gateway4: netip.MustParseAddr("100.78.0.255")}, inventory.ErrInvalid},
		{"a /30", inventory.Network{Name: "net2", CIDR4: netip.MustParsePrefix("100.78.0.0/30")}, inventory.ErrInvalid},
		{"an IPv6 cidr4", inventory.Network{Name: "net2", CIDR4: netip.MustParsePrefix("fd00::/64")}, inventory.ErrInvalid},
		{"a bad name", inventory.Network{Name: "Net 2", CIDR4: netip.MustParsePrefix("100.78.0.0/24")}, inventory.ErrInvalid},
	} {
		tc.n.ID, tc.n.Tenant = uuid(1, 99), "acme"
		if _, err := s.CreateNetwork(ctx, tc.n); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.what, err, tc.want)
		}
	}
	other, err := s.CreateNetwork(ctx, inventory.Network{ID: uuid(1, 2), Tenant: "beta", Name: "net1",
		CIDR4: netip.MustParsePrefix("100.77.0.0/24"), Prefix6: netip.MustParsePrefix("fd00:77::/64")})
	if err != nil || other.VNI == net1.VNI {
		t.Fatalf("another tenant's network on the same addresses: %+v %v (acme's VNI %d)", other, err, net1.VNI)
	}
	if l, err := s.ListNetworks(ctx, "acme"); err != nil || len(l) != 1 || l[0].Name != "net1" {
		t.Fatalf("list: %+v %v", l, err)
	}

	p, err := s.CreatePort(ctx, inventory.Port{ID: uuid(2, 1), Network: net1.ID, Tenant: "acme", MAC: "52:54:00:00:00:01", Owner: "vm:" + uuid(3, 1)})
	if err != nil || len(p.Addresses) != 1 || p.Addresses[0] != netip.MustParseAddr("100.77.0.2") {
		t.Fatalf("the first port: %+v %v", p, err)
	}
	if _, err := s.CreatePort(ctx, inventory.Port{ID: uuid(2, 2), Network: net1.ID, Tenant: "beta", MAC: "52:54:00:00:00:02", Owner: "vm:x"}); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("a port of another tenant on acme's network: %v", err)
	}
	if err := s.DeleteNetwork(ctx, "acme", "net1", 1); !errors.Is(err, inventory.ErrInUse) {
		t.Fatalf("deleting a network with a port: %v, want ErrInUse", err)
	}
	if err := s.DeletePort(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNetwork(ctx, "acme", "net1", 2); !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("a stale delete: %v", err)
	}
	if err := s.DeleteNetwork(ctx, "acme", "net1", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetNetwork(ctx, "acme", "net1"); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

// IPAM: reservations are checked against the network, an address is never handed out twice —
// not even by 1,000 allocations at once — and a deleted port's addresses are free again.
func TestIPAM(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, inventory.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	n, err := s.CreateNetwork(ctx, inventory.Network{ID: uuid(1, 1), Tenant: "acme", Name: "big",
		CIDR4: netip.MustParsePrefix("100.80.0.0/22"), Prefix6: netip.MustParsePrefix("fd00:80::/64")})
	if err != nil {
		t.Fatal(err)
	}
	port := func(i int) inventory.Port {
		return inventory.Port{ID: uuid(2, i), Network: n.ID, Tenant: "acme", MAC: fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16, (i>>8)&0xff, i&0xff),
			Owner: fmt.Sprintf("app:%d", i)}
	}
	for _, tc := range []struct {
		what string
		addr string
		want error
	}{
		{"outside the block", "100.81.0.9", inventory.ErrInvalid},
		{"the network address", "100.80.0.0", inventory.ErrInvalid},
		{"the gateway", "100.80.0.1", inventory.ErrInvalid},
		{"the broadcast address", "100.80.3.255", inventory.ErrInvalid},
		{"outside the IPv6 prefix", "fd00:81::5", inventory.ErrInvalid},
	} {
		if _, err := s.CreatePort(ctx, port(100000), netip.MustParseAddr(tc.addr)); !errors.Is(err, tc.want) {
			t.Errorf("reserving %s (%s): %v, want %v", tc.addr, tc.what, err, tc.want)
		}
	}
	res, err := s.CreatePort(ctx, port(100001), netip.MustParseAddr("100.80.0.9"), netip.MustParseAddr("fd00:80::9"))
	if err != nil || len(res.Addresses) != 2 {
		t.Fatalf("a reservation of two addresses: %+v %v", res, err)
	}
	if _, err := s.CreatePort(ctx, port(100002), netip.MustParseAddr("100.80.0.9")); !errors.Is(err, inventory.ErrExists) {
		t.Fatalf("a reserved address again: %v, want ErrExists", err)
	}

	const n1000 = 1000
	got := make([]netip.Addr, n1000)
	var wg sync.WaitGroup
	errs := make(chan error, n1000)
	for i := range n1000 {
		wg.Go(func() {
			p, err := s.CreatePort(ctx, port(i))
			if err != nil {
				errs <- err
				return
			}
			got[i] = p.Addresses[0]
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a concurrent allocation: %v", err)
	}
	seen := map[netip.Addr]int{}
	for i, a := range got {
		if prev, dup := seen[a]; dup {
			t.Fatalf("%v handed to ports %d and %d", a, prev, i)
		}
		if a == res.Addresses[0] || !n.CIDR4.Contains(a) {
			t.Fatalf("port %d got %v", i, a)
		}
		seen[a] = i
	}
	t.Logf("%d concurrent allocations: %d distinct addresses, none the reserved one", n1000, len(seen))

	// Released addresses are handed out again; a full network says so.
	if err := s.DeletePort(ctx, uuid(2, 7)); err != nil {
		t.Fatal(err)
	}
	again, err := s.CreatePort(ctx, port(100003))
	if err != nil || again.Addresses[0] != got[7] {
		t.Fatalf("after a release: %+v %v (released %v)", again, err, got[7])
	}
	free := 1024 - 3 - 1 - n1000 // network, gateway, broadcast; the reservation
	for i := range free {
		if _, err := s.CreatePort(ctx, port(200000+i)); err != nil {
			t.Fatalf("address %d of the %d left: %v", i, free, err)
		}
	}
	if _, err := s.CreatePort(ctx, port(300000)); !errors.Is(err, inventory.ErrInUse) {
		t.Fatalf("a full network: %v, want ErrInUse", err)
	}
}
